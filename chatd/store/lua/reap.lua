-- family: routing
-- Liveness sweep, run by every process each tick (concurrent runs are harmless):
--  1. agents whose heartbeat lapsed go offline; their offers go back to the queue and their
--     active chats become orphans that wait agent_grace for them;
--  2. orphans past their grace go to the front of the queue (with a system message:
--     session_sync.lua);
--  3. chats whose visitor has been gone past visitor_grace are returned, to be closed
--     (visitor_left) by the caller, chat first (session_close.lua, then route_close.lua);
--  4. chats left to be answered later whose deadline passed (CHATD_ASYNC_TTL_H) are returned,
--     to be closed (expired) the same way;
--  5. visitors counted as connected whose every process fell silent past the heartbeat TTL (a
--     process killed says no goodbye) are gone, since their last heartbeat: their holders are
--     told within TTL + one tick of it.
-- KEYS: the routing state (keys.ROUTING), then one queue per topic
-- ARGV: mode, topics, heartbeat ttl ms, agent grace ms, visitor grace ms
-- Returns: {agents gone, chats re-queued, {sids whose visitor left}, {sids expired}}
local ttl, agent_grace, visitor_grace = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

local gone = redis.call('ZRANGEBYSCORE', R.agents_seen, '-inf', NOW - ttl, 'LIMIT', 0, 200)
for _, login in ipairs(gone) do
  redis.call('ZREM', R.agents_seen, login)
  redis.call('ZREM', R.available, login)
  local a = get_agent(login)
  if a then
    a.status = 'offline'
    put_agent(login, a)
    for _, sid in ipairs(a.held) do
      local route = get_route(sid)
      if route and route.st == 'offered' and route.offer_agent == login then
        revoke_offer(sid, route, 'offer_lost', 'expired')
        put_route(sid, route)
        sync(sid, route, '')
      elseif route and route.st == 'active' and route.agent == login then
        redis.call('ZADD', R.orphans, 'NX', NOW + agent_grace, sid)
      end
    end
  end
end

local orphans = redis.call('ZRANGEBYSCORE', R.orphans, '-inf', NOW, 'LIMIT', 0, 200)
for _, sid in ipairs(orphans) do
  redis.call('ZREM', R.orphans, sid)
  local route = get_route(sid)
  if route and route.st == 'active' then
    local login = route.agent
    release(login, route, sid)
    emit('a', login, {e = 'released', sid = sid, reason = 'agent_gone'})
    move(route, 'orphaned')
    route.prev_agent, route.name = login, ''
    requeue(sid, route, true)
    put_route(sid, route)
    sync(sid, route, 'agent_gone')
  end
end

-- The chats of a deadline set that are due, dropping those already gone from routing.
local function due(key, upto)
  local out = {}
  for _, sid in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', upto, 'LIMIT', 0, 200)) do
    if get_route(sid) then
      out[#out + 1] = sid
    else
      redis.call('ZREM', key, sid)
    end
  end
  return out
end

local silent = redis.call('ZRANGEBYSCORE', R.present, '-inf', NOW - ttl, 'WITHSCORES',
                          'LIMIT', 0, 200)
for i = 1, #silent, 2 do
  local sid = silent[i]
  local route = get_route(sid)
  if route and route.vst ~= 'g' then
    set_presence(sid, route, 'g', tonumber(silent[i + 1]))
    put_presence(sid, route)
  else
    redis.call('ZREM', R.present, sid)
  end
end

local left = due(R.visitors_seen, NOW - visitor_grace)
local expired = due(R.async_due, NOW)
return {#gone, #orphans, left, expired}
