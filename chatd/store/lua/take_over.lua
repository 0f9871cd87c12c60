-- family: routing
-- A supervisor makes an open chat their own at once: the gendarme who held it loses it
-- (`released`, reason 'taken_over'), or the one it was offered to loses the offer
-- (`offer_revoked`, same reason); the visitor gets a system message and `assigned` with the
-- supervisor's name (session_sync.lua). The chat's weight goes on the supervisor's load even
-- beyond their capacity: a supervisor steps in when it matters, and matching offers them
-- nothing more until they have room again.
-- KEYS: the routing state (keys.ROUTING), then one queue per topic
-- ARGV: mode, topics, sid, login (the supervisor), display name
-- Returns: {'ok', who held it or had it offered}, {'not_found'} (no open chat),
--          {'conflict'} (theirs already, waiting in a queue, or the supervisor has no record:
--          not signed in)
local sid, login, name = ARGV[3], ARGV[4], ARGV[5]
local route = get_route(sid)
if not route then return {'not_found'} end
if route.st ~= 'active' and route.st ~= 'offered' then return {'conflict'} end
if route.st == 'active' and route.agent == login then return {'conflict'} end
if not get_agent(login) then return {'conflict'} end
local was
if route.st == 'active' then
  was = route.agent
  release(was, route, sid)
  emit('a', was, {e = 'released', sid = sid, reason = 'taken_over'})
  route.prev_agent = was
else
  was = route.offer_agent or ''
  if was ~= '' then
    release(was, route, sid)
    if was ~= login then
      emit('a', was, {e = 'offer_revoked', sid = sid, reason = 'taken_over'})
    end
  end
  redis.call('ZREM', R.offers, sid)
end
redis.call('ZREM', R.orphans, sid)  -- its holder was gone: no longer waiting for them
move(route, 'take_over')
route.agent, route.name, route.offer_agent, route.deadline = login, name, '', 0
route.assigned_at = NOW
take(login, get_agent(login), route, sid)
put_route(sid, route)
emit('a', login, {e = 'assigned', sid = sid, at = NOW})
sync(sid, route, 'taken_over')
return {'ok', was}
