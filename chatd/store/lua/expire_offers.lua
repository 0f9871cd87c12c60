-- family: routing
-- Offers past their deadline go back to the queue at the visitor's original place.
-- KEYS: the routing state (keys.ROUTING), then one queue per topic
-- ARGV: mode, topics
-- Returns: the number of offers expired
local due = redis.call('ZRANGEBYSCORE', R.offers, '-inf', NOW, 'LIMIT', 0, 500)
for _, sid in ipairs(due) do
  local route = get_route(sid)
  if route and route.st == 'offered' then
    revoke_offer(sid, route, 'expire', 'expired')
    put_route(sid, route)
    sync(sid, route, '')
  else
    redis.call('ZREM', R.offers, sid)
  end
end
return #due
