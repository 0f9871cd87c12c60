-- One process says which agents and visitor sessions it holds connections for.
-- An agent the reaper had marked offline comes back: their orphaned chats are theirs again.
-- KEYS: none
-- ARGV: P, NOW, number of agents n, login_1..login_n, sid_1..sid_m (visitor sessions)
-- Returns: logins that were offline and are back
local n = tonumber(ARGV[3])
local back = {}
for i = 4, 3 + n do
  local login = ARGV[i]
  if not redis.call('ZSCORE', k_agents_seen(), login) then
    agent_back(login)
    back[#back + 1] = login
  else
    redis.call('ZADD', k_agents_seen(), NOW, login)
  end
end
for i = 4 + n, #ARGV do
  redis.call('ZADD', k_visitors_seen(), 'XX', NOW, ARGV[i])
end
return back
