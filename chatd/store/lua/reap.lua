-- Liveness sweep, run by every process each tick (concurrent runs are harmless):
--  1. agents whose heartbeat lapsed go offline; their offers go back to the queue and their
--     active chats become orphans that wait agent_grace for them;
--  2. orphans past their grace go to the front of the queue with a system message;
--  3. sessions whose visitor has been gone past visitor_grace are closed (visitor_left).
-- KEYS: none
-- ARGV: P, NOW, heartbeat ttl ms, agent grace ms, visitor grace ms, retention ms,
--       system text (fr), system text (en)
-- Returns: {agents gone, chats re-queued, sessions closed}
local ttl, agent_grace, visitor_grace, retention = tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5]), tonumber(ARGV[6])
local text_fr, text_en = ARGV[7], ARGV[8]

local gone = redis.call('ZRANGEBYSCORE', k_agents_seen(), '-inf', NOW - ttl, 'LIMIT', 0, 200)
for _, login in ipairs(gone) do
  redis.call('ZREM', k_agents_seen(), login)
  redis.call('ZREM', k_available(), login)
  redis.call('HSET', k_agent(login), 'status', 'offline')
  for _, sid in ipairs(redis.call('SMEMBERS', k_agent_sessions(login))) do
    local state, offer_agent, agent = unpack(redis.call('HMGET', k_session(sid),
      'state', 'offer_agent', 'agent'))
    if state == 'offered' and offer_agent == login then
      revoke_offer(sid, 'expired', true)
    elseif state == 'active' and agent == login then
      redis.call('ZADD', k_orphans(), 'NX', NOW + agent_grace, sid)
    else
      redis.call('SREM', k_agent_sessions(login), sid)
    end
  end
end

local orphans = redis.call('ZRANGEBYSCORE', k_orphans(), '-inf', NOW, 'LIMIT', 0, 200)
for _, sid in ipairs(orphans) do
  redis.call('ZREM', k_orphans(), sid)
  local skey = k_session(sid)
  local state, lang = unpack(redis.call('HMGET', skey, 'state', 'lang'))
  if state == 'active' then
    detach_agent(sid, 'agent_gone')
    append_msg(sid, 'system', lang == 'en' and text_en or text_fr, '', '')
    requeue(sid, true)
  end
end

local left = redis.call('ZRANGEBYSCORE', k_visitors_seen(), '-inf', NOW - visitor_grace,
                        'LIMIT', 0, 200)
for _, sid in ipairs(left) do
  local state = hget(k_session(sid), 'state')
  if state and state ~= 'closed' then
    close_session(sid, 'system', 'visitor_left', '', retention)
  else
    redis.call('ZREM', k_visitors_seen(), sid)
  end
end
return {#gone, #orphans, #left}
