-- family: routing
-- A chat is handed on: by the agent who holds it (`transfer`), or by a supervisor on
-- anybody's active chat (`reassign`). To a topic's queue (at the front), or as an offer to a
-- named agent who is online with room for it. The visitor keeps the whole transcript (and
-- gets a system message: session_sync.lua); the note given is kept with the routing record
-- (ho_*) so that the chat's next offer carries it, whoever gets it (lib.lua, handed_on), and
-- is stored once as an internal note signed by whoever handed the chat on (lib.lua, sync).
-- KEYS: the routing state (keys.ROUTING), then one queue per topic
-- ARGV: mode, topics, sid, login (who hands it on), to_agent ('' for none), to_topic ('' for
--       none), topic priority, topic weight, offer timeout ms, note ('' for none), the
--       login's display name, by ('holder': an agent's own chat | 'supervisor': any holder)
-- Returns: {'ok', the holder who lost it}, {'not_found'} (not an active chat of this agent,
--          or for a supervisor no active chat), {'conflict'} (the target cannot take it)
local sid, login, to_agent, to_topic, prio, weight, offer_ms, note, name, by =
  ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]),
  ARGV[10], ARGV[11], ARGV[12]
local route = get_route(sid)
if not route or route.st ~= 'active' then return {'not_found'} end
if by ~= 'supervisor' and route.agent ~= login then return {'not_found'} end
local holder = route.agent
local reason = by == 'supervisor' and 'reassigned' or 'transferred'
local function handoff()
  route.ho_from, route.ho_name, route.ho_note, route.ho_ver = login, name, note, route.ver
end
if to_agent ~= '' then
  if to_agent == holder then return {'conflict'} end
  local b = get_agent(to_agent)
  if not b or (b.status ~= 'available' and b.status ~= 'away') then return {'conflict'} end
  if (tonumber(b.cap) or 0) - (tonumber(b.load) or 0) < (tonumber(route.weight) or 1) then
    return {'conflict'}
  end
  release(holder, route, sid)
  emit('a', holder, {e = 'released', sid = sid, reason = reason})
  move(route, 'transfer_agent')
  handoff()
  route.prev_agent, route.agent, route.name = holder, '', ''
  route.offer_agent, route.deadline, route.offered_at = to_agent, NOW + offer_ms, NOW
  redis.call('ZADD', R.offers, route.deadline, sid)
  take(to_agent, b, route, sid)
  emit('a', to_agent, {e = 'offer', sid = sid, topic = route.topic, lang = route.lang,
                       waited_ms = NOW - tonumber(route.created), expires_ms = offer_ms,
                       preview = '', from_agent = login, from_agent_name = name, note = note,
                       async = route.async == 1})
  put_route(sid, route)
  sync(sid, route, 'transferred')
  return {'ok', holder}
end
release(holder, route, sid)
emit('a', holder, {e = 'released', sid = sid, reason = reason})
move(route, 'transfer_topic')
handoff()
route.prev_agent, route.name = holder, ''
route.topic, route.prio, route.weight = to_topic, prio, weight
requeue(sid, route, true)
put_route(sid, route)
sync(sid, route, 'transferred')
return {'ok', holder}
