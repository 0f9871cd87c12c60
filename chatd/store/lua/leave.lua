-- family: routing
-- The visitor leaves their question to be answered later (docs/protocol.md, "Answers
-- later"). The chat stays open without them: their absence no longer closes it; in its queue
-- it goes behind every visitor waiting live for its topic (chats left for later keep their
-- order among themselves), and offers of it say so (async); it is closed as 'expired' if it is
-- still open at the deadline. Leaving twice keeps the first deadline.
-- KEYS: the routing state (keys.ROUTING), then one queue per topic
-- ARGV: mode, topics, sid, visitor id, time to live ms
-- Returns: {'ok', deadline (epoch ms)} or {'not_found'} (no such open chat of this visitor)
local sid, vid, ttl = ARGV[3], ARGV[4], tonumber(ARGV[5])
local route = get_route(sid)
if not route or route.visitor ~= vid or route.st == 'pending' then return {'not_found'} end
if route.async ~= 1 then
  if route.st == 'queued' then line_moved(route) end  -- those behind move up
  route.async = 1
  route.async_until = NOW + ttl
  route.left_at = NOW  -- the console's list of chats left for later (GET /api/async)
  route.qscore = tonumber(route.created) + QUEUE_SHIFT  -- behind the live ones (requeue keeps it)
  if route.st == 'queued' then
    redis.call('ZADD', queue_of(route), 'XX', route.qscore, sid)
  end
  redis.call('ZREM', R.visitors_seen, sid)
  redis.call('ZADD', R.async_due, route.async_until, sid)
  put_route(sid, route)
end
return {'ok', route.async_until}
