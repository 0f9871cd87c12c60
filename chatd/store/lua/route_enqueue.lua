-- family: routing
-- Step 3 of a new chat: into its topic's queue, where matching finds it.
-- KEYS: the routing state (keys.ROUTING), then one queue per topic
-- The visitor who starts it is connected, held by the process that creates it (presence.lua).
-- ARGV: mode, topics, sid, preview (of the first message, for the gendarme's offer), process id
--       ('' when the repair finishes a chat whose creator died)
-- Returns: its 1-based place among the topic's waiting visitors (0: no longer waiting, or
--          'not_found' when there is no such pending chat)
local sid, preview, proc = ARGV[3], ARGV[4], ARGV[5]
local route = get_route(sid)
if not route then return 'not_found' end
if route.st == 'pending' then
  move(route, 'enqueue')
  route.preview = preview
  if proc ~= '' then  -- its creator holds the visitor's connection
    route.vp = route.vp or {}
    route.vp[proc] = 1
    if route.vst ~= 'c' then route.vst, route.vsince = 'c', NOW end
    redis.call('ZADD', R.present, NOW, sid)
  elseif route.vst == nil then  -- finished by the repair: its creator died, nobody holds them
    route.vst, route.vsince, route.vp = 'g', NOW, {}
  end
  redis.call('ZREM', R.pending, sid)
  redis.call('ZADD', queue_of(route), route.qscore, sid)
  put_route(sid, route)
  redis.call('ZADD', R.open, route.created, sid)
  redis.call('ZADD', R.visitors_seen, NOW, sid)
  sync(sid, route, '')
end
local rank = redis.call('ZRANK', queue_of(route), sid)
if not rank then return 0 end
return rank + 1
