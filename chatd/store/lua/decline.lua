-- family: routing
-- An agent declines an offer: the visitor goes back to their place in the queue.
-- KEYS: the routing state (keys.ROUTING), then one queue per topic
-- ARGV: mode, topics, sid, login
-- Returns: 'ok', 'conflict' or 'not_found' (as accept.lua)
local sid, login = ARGV[3], ARGV[4]
local route = get_route(sid)
if route and route.st == 'offered' and route.offer_agent == login then
  revoke_offer(sid, route, 'decline', 'declined')
  put_route(sid, route)
  sync(sid, route, '')
  return 'ok'
end
return offer_refusal(route, login)
