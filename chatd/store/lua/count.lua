-- Counts one event in a fixed window (a rate limit shared by every process).
-- KEYS: none
-- ARGV: P, NOW, counter key suffix (already hashed: no client address is stored), window s
-- Returns: the count in this window, this event included
local key = k_counter(ARGV[3])
local n = redis.call('INCR', key)
if n == 1 then redis.call('EXPIRE', key, tonumber(ARGV[4])) end
return n
