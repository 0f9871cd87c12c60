-- Offers past their deadline go back to the queue at the visitor's original place.
-- KEYS: none
-- ARGV: P, NOW
-- Returns: the number of offers expired
local due = redis.call('ZRANGEBYSCORE', k_offers(), '-inf', NOW, 'LIMIT', 0, 500)
for _, sid in ipairs(due) do
  if hget(k_session(sid), 'state') == 'offered' then
    revoke_offer(sid, 'expired', true)
  else
    redis.call('ZREM', k_offers(), sid)
  end
end
return #due
