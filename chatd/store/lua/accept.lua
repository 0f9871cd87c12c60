-- family: routing
-- An agent accepts an offer: the chat becomes theirs. Accepting again a chat already theirs
-- is 'conflict' (answered already), but announces it again: a retry after `unavailable` (its
-- first answer was lost) still gets its `assigned`.
-- KEYS: the routing state (keys.ROUTING), then one queue per topic
-- ARGV: mode, topics, sid, login, agent display name
-- Returns: 'ok'; 'conflict' (it was offered to this agent but is gone: expired, taken,
--          visitor left); 'not_found' (never offered to this agent)
local sid, login, name = ARGV[3], ARGV[4], ARGV[5]
local route = get_route(sid)
if route and route.st == 'active' and route.agent == login then
  emit('a', login, {e = 'assigned', sid = sid, at = route.assigned_at})
  sync(sid, route, '')
  return 'conflict'
end
if route and route.st == 'offered' and route.offer_agent == login then
  move(route, 'accept')
  route.agent, route.name, route.offer_agent, route.assigned_at = login, name, '', NOW
  redis.call('ZREM', R.offers, sid)
  put_route(sid, route)
  emit('a', login, {e = 'assigned', sid = sid, at = NOW})
  sync(sid, route, '')
  return 'ok'
end
return offer_refusal(route, login)
