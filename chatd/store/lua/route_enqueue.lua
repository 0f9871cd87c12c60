-- family: routing
-- Step 3 of a new chat: into its topic's queue, where matching finds it.
-- KEYS: the routing state (keys.ROUTING), then one queue per topic
-- ARGV: mode, topics, sid, preview (of the first message, for the gendarme's offer)
-- Returns: its 1-based place among the topic's waiting visitors (0: no longer waiting, or
--          'not_found' when there is no such pending chat)
local sid, preview = ARGV[3], ARGV[4]
local route = get_route(sid)
if not route then return 'not_found' end
if route.st == 'pending' then
  move(route, 'enqueue')
  route.preview = preview
  redis.call('ZREM', R.pending, sid)
  redis.call('ZADD', R.queue[route.topic], route.qscore, sid)
  route.pos0 = redis.call('ZRANK', R.queue[route.topic], sid) + 1  -- a line found? (match.lua)
  put_route(sid, route)
  redis.call('ZADD', R.open, route.created, sid)
  redis.call('ZADD', R.visitors_seen, NOW, sid)
  sync(sid, route, '')
end
local rank = redis.call('ZRANK', R.queue[route.topic], sid)
if not rank then return 0 end
return rank + 1
