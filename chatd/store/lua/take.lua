-- family: routing
-- A gendarme takes a chat left for later from the list of those waiting (GET /api/async): it
-- is offered to them at once, out of its turn, as matching would offer it (the `offer` event:
-- async, the same timeout; declined or expired, it goes back to its place). One script, so of
-- two gendarmes taking the same chat at once one gets the offer and the other 'taken'.
-- KEYS: the routing state (keys.ROUTING), then one queue per topic
-- ARGV: mode, topics, sid, login, any topic (1: a supervisor, 0: the topics the gendarme
--       takes), offer timeout ms
-- Returns: 'ok'; 'not_found' (no such open chat, not left for later, or of a topic this
--          gendarme does not take); 'taken' (no longer waiting: offered or answered);
--          'offline' (the gendarme counts as signed out); 'no_room' (capacity minus load is
--          less than the chat's weight)
local sid, login, any_topic, offer_ms = ARGV[3], ARGV[4], ARGV[5] == '1', tonumber(ARGV[6])
local route = get_route(sid)
if not route or route.async ~= 1 then return 'not_found' end
local a = get_agent(login)
if not a then return 'offline' end
if not any_topic and a.topics and a.topics ~= ''
  and not string.find(' ' .. a.topics .. ' ', ' ' .. route.topic .. ' ', 1, true) then
  return 'not_found'
end
if route.st ~= 'queued' then return 'taken' end
if a.status ~= 'available' and a.status ~= 'away' then return 'offline' end
local weight = tonumber(route.weight) or 1
if (tonumber(a.cap) or 0) - (tonumber(a.load) or 0) < weight then return 'no_room' end
redis.call('ZREM', queue_of(route), sid)
move(route, 'offer')
route.offer_agent, route.deadline, route.offered_at = login, NOW + offer_ms, NOW
redis.call('ZADD', R.offers, route.deadline, sid)
take(login, a, route, sid)
emit('a', login, {e = 'offer', sid = sid, topic = route.topic, lang = route.lang,
                  waited_ms = NOW - tonumber(route.created), expires_ms = offer_ms,
                  preview = route.preview or '', async = true})
put_route(sid, route)
sync(sid, route, '')
return 'ok'
