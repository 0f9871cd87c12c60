-- An agent's connection said hello: mark them seen and give them back their orphaned chats.
-- KEYS: none
-- ARGV: P, NOW, login, account capacity, langs, topics, display name
-- Returns: {status, {sid, state, topic, last_seq, assigned_at, ...}} for the agent's open
--          sessions
local login = ARGV[3]
local akey = k_agent(login)
agent_back(login)
redis.call('HSETNX', akey, 'cap', ARGV[4])
redis.call('HSETNX', akey, 'load', 0)
redis.call('HSET', akey, 'langs', ARGV[5], 'topics', ARGV[6], 'name', ARGV[7])
local out = {}
for _, sid in ipairs(redis.call('SMEMBERS', k_agent_sessions(login))) do
  local state, topic, agent, at = unpack(redis.call('HMGET', k_session(sid), 'state', 'topic',
                                                   'agent', 'assigned_at'))
  if state == 'active' and agent == login then
    out[#out + 1] = sid; out[#out + 1] = state; out[#out + 1] = topic
    out[#out + 1] = visible_seq(k_session(sid)); out[#out + 1] = at or 0
  end
end
return {hget(k_agent(login), 'status') or 'away', out}
