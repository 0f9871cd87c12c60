-- An agent's connection said hello: mark them seen and give them back their orphaned chats.
-- KEYS: none
-- ARGV: P, NOW, login
-- Returns: {status, {sid, state, topic, last_seq, ...}} for the agent's open sessions
local login = ARGV[3]
agent_back(login)
local out = {}
for _, sid in ipairs(redis.call('SMEMBERS', k_agent_sessions(login))) do
  local state, topic, seq, agent = unpack(redis.call('HMGET', k_session(sid), 'state', 'topic', 'seq', 'agent'))
  if state == 'active' and agent == login then
    out[#out + 1] = sid; out[#out + 1] = state; out[#out + 1] = topic; out[#out + 1] = seq
  end
end
return {hget(k_agent(login), 'status') or 'away', out}
