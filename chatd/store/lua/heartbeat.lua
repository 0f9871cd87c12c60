-- family: routing
-- One process says which agents and visitor sessions it holds connections for.
-- An agent the reaper had marked offline comes back: their orphaned chats are theirs again
-- (their chosen status is set again by the caller). A visitor the reaper had found silent
-- (every process holding them fell quiet past the heartbeat TTL: a stalled link, a failover)
-- whom this process still holds is connected again.
-- KEYS: the routing state (keys.ROUTING), then one queue per topic
-- ARGV: mode, topics, number of agents n, process id, login_1..login_n, sid_1..sid_m (visitor
--       sessions)
-- Returns: logins that were offline and are back
local n, proc = tonumber(ARGV[3]), ARGV[4]
local back = {}
for i = 5, 4 + n do
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
for i = 5 + n, #ARGV do
  local sid = ARGV[i]
  redis.call('ZADD', R.visitors_seen, 'XX', NOW, sid)
  if redis.call('ZADD', R.present, 'XX', 'CH', NOW, sid) == 0 then
    local route = get_route(sid)
    if route then
      route.vp = route.vp or {}
      route.vp[proc] = 1
      if route.vst == 'c' then
        redis.call('ZADD', R.present, NOW, sid)  -- already fresh (the same millisecond)
      else
        set_presence(sid, route, 'c', NOW)
      end
      put_presence(sid, route)
    end
  end
end
return back
