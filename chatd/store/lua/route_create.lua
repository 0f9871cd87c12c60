-- family: routing
-- Step 1 of a new chat: its routing record, pending (not yet in a queue). If the process
-- dies before the chat's hash exists and it is enqueued (session_create.lua,
-- route_enqueue.lua), the repair finds it here in the pending set and finishes or drops it.
-- KEYS: the routing state (keys.ROUTING), then one queue per topic
-- ARGV: mode, topics, sid, visitor id, topic, lang, priority, weight
-- Returns: {'ok' | 'exists', created}
local sid, vid, topic, lang, prio, weight =
  ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local old = get_route(sid)
if old then return {'exists', old.created} end
put_route(sid, {st = 'pending', topic = topic, lang = lang, prio = prio, weight = weight,
                created = NOW, qscore = NOW, visitor = vid, agent = '', offer_agent = '',
                declined = '', ver = 1, preview = ''})
redis.call('ZADD', R.pending, NOW, sid)
return {'ok', NOW}
