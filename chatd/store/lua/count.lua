-- family: counter
-- One hourly allowance, counted across every process (an address's new chats).
-- KEYS: the counter
-- ARGV: mode, window s
-- Returns: the count so far this hour, this one included
local n = redis.call('INCR', C)
if n == 1 then redis.call('EXPIRE', C, tonumber(ARGV[2])) end
return n
