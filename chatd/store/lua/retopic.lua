-- family: routing
-- A chat waiting in the queue of a topic that is no longer configured would wait there for
-- ever: matching is given only the configured queues. It goes to the general line, at its
-- place by arrival (its score), and is offered as a general question from then on.
-- KEYS: the routing state (keys.ROUTING), then one queue per topic: the configured ones, then
--       the removed topic's
-- ARGV: mode, topics (the removed one last), sid, the removed topic
-- Returns: 1 (moved) or 0 (no longer waiting there: taken, closed, or moved already)
local sid, removed = ARGV[3], ARGV[4]
local route = get_route(sid)
if not route or route.st ~= 'queued' or route.topic ~= removed then return 0 end
redis.call('ZREM', R.queue[removed], sid)
route.topic = 'general'
redis.call('ZADD', queue_of(route), route.qscore, sid)
put_route(sid, route)
return 1
