-- family: routing
-- A chat closed in its own hash (session_close.lua) leaves the routing state: what it held of
-- a gendarme's capacity is given back, it leaves queues and offers, and its routing record
-- goes (the chat's hash keeps the facts until retention).
-- KEYS: the routing state (keys.ROUTING), then one queue per topic
-- ARGV: mode, topics, sid
-- Returns: {'ok', visitor id} or {'gone'} (no routing record: closed already)
local sid = ARGV[3]
local route = get_route(sid)
if not route then return {'gone'} end
if route.st == 'queued' then
  line_moved(route)
  redis.call('ZREM', queue_of(route), sid)
elseif route.st == 'offered' then
  if route.offer_agent ~= '' then
    release(route.offer_agent, route, sid)
    emit('a', route.offer_agent, {e = 'offer_revoked', sid = sid, reason = 'visitor_left'})
  end
elseif route.st == 'active' then
  if route.agent ~= '' then release(route.agent, route, sid) end
  local started = tonumber(route.assigned_at)
  if started and started > 0 then
    local took = NOW - started
    local old = tonumber(redis.call('HGET', R.handling, route.topic))
    local avg = took
    if old then avg = math.floor(old * 0.8 + took * 0.2) end
    redis.call('HSET', R.handling, route.topic, avg)
  end
end
move(route, 'close')
for _, key in ipairs({R.orphans, R.open, R.visitors_seen, R.pending, R.offers, R.async_due,
                      R.present}) do
  redis.call('ZREM', key, sid)
end
redis.call('HDEL', R.routes, sid)
return {'ok', route.visitor}
