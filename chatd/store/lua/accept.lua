-- An agent accepts an offer: the session becomes theirs.
-- KEYS: none
-- ARGV: P, NOW, sid, login, agent display name
-- Returns: 'ok'; 'conflict' (it was offered to this agent but is gone: expired, taken,
--          already accepted, visitor left); 'not_found' (never offered to this agent)
local sid, login, name = ARGV[3], ARGV[4], ARGV[5]
local skey = k_session(sid)
local state, offer_agent, agent, declined = unpack(redis.call('HMGET', skey,
  'state', 'offer_agent', 'agent', 'declined'))
if state == 'offered' and offer_agent == login then
  redis.call('HSET', skey, 'state', 'active', 'agent', login, 'offer_agent', '',
             'assigned_at', NOW, 'agent_name', name)
  redis.call('ZREM', k_offers(), sid)
  publish(k_agent_channel(login), {e = 'assigned', sid = sid, at = NOW})
  publish(k_session_channel(sid), {e = 'assigned', sid = sid, agent = login, name = name})
  return 'ok'
end
return offer_refusal(state, agent, declined, login)
