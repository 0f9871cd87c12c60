-- family: routing
-- An agent hands an active chat on: to a topic's queue (at the front), or as an offer to a
-- named agent who is online with room for it. The visitor keeps the whole transcript (and
-- gets a system message: session_sync.lua).
-- KEYS: the routing state (keys.ROUTING), then one queue per topic
-- ARGV: mode, topics, sid, login, to_agent ('' for none), to_topic ('' for none), topic
--       priority, topic weight, offer timeout ms
-- Returns: 'ok', 'not_found' (not this agent's active chat), 'conflict' (target cannot take it)
local sid, login, to_agent, to_topic, prio, weight, offer_ms =
  ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local route = get_route(sid)
if not route or route.st ~= 'active' or route.agent ~= login then return 'not_found' end
if to_agent ~= '' then
  if to_agent == login then return 'conflict' end
  local b = get_agent(to_agent)
  if not b or (b.status ~= 'available' and b.status ~= 'away') then return 'conflict' end
  if (tonumber(b.cap) or 0) - (tonumber(b.load) or 0) < (tonumber(route.weight) or 1) then
    return 'conflict'
  end
  release(login, route, sid)
  emit('a', login, {e = 'released', sid = sid, reason = 'transferred'})
  move(route, 'transfer_agent')
  route.prev_agent, route.agent, route.name = login, '', ''
  route.offer_agent, route.deadline, route.offered_at = to_agent, NOW + offer_ms, NOW
  redis.call('ZADD', R.offers, route.deadline, sid)
  take(to_agent, b, route, sid)
  emit('a', to_agent, {e = 'offer', sid = sid, topic = route.topic, lang = route.lang,
                       waited_ms = NOW - tonumber(route.created), expires_ms = offer_ms,
                       preview = '', from_agent = login, async = route.async == 1})
  put_route(sid, route)
  sync(sid, route, 'transferred')
  return 'ok'
end
release(login, route, sid)
emit('a', login, {e = 'released', sid = sid, reason = 'transferred'})
move(route, 'transfer_topic')
route.prev_agent, route.name = login, ''
route.topic, route.prio, route.weight = to_topic, prio, weight
requeue(sid, route, true)
put_route(sid, route)
sync(sid, route, 'transferred')
return 'ok'
