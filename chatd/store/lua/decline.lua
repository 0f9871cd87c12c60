-- An agent declines an offer: the visitor goes back to their place in the queue.
-- KEYS: none
-- ARGV: P, NOW, sid, login
-- Returns: 'ok', 'conflict' or 'not_found' (as accept.lua)
local sid, login = ARGV[3], ARGV[4]
local skey = k_session(sid)
local state, offer_agent, agent, declined = unpack(redis.call('HMGET', skey,
  'state', 'offer_agent', 'agent', 'declined'))
if state == 'offered' and offer_agent == login then
  revoke_offer(sid, 'declined', true)
  return 'ok'
end
return offer_refusal(state, agent, declined, login)
