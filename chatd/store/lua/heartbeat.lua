-- family: routing
-- One process says which agents and visitor sessions it holds connections for.
-- An agent the reaper had marked offline comes back: their orphaned chats are theirs again
-- (their chosen status is set again by the caller).
-- KEYS: the routing state (keys.ROUTING), then one queue per topic
-- ARGV: mode, topics, number of agents n, login_1..login_n, sid_1..sid_m (visitor sessions)
-- Returns: logins that were offline and are back
local n = tonumber(ARGV[3])
local back = {}
for i = 4, 3 + n do
  local login = ARGV[i]
  if not redis.call('ZSCORE', R.agents_seen, login) then
    local a = get_agent(login)
    if a then
      if a.status == 'offline' or not a.status then a.status = 'away' end
      for _, sid in ipairs(a.held) do redis.call('ZREM', R.orphans, sid) end
      put_agent(login, a)
    end
    back[#back + 1] = login
  end
  redis.call('ZADD', R.agents_seen, NOW, login)
end
for i = 4 + n, #ARGV do
  redis.call('ZADD', R.visitors_seen, 'XX', NOW, ARGV[i])
end
return back
