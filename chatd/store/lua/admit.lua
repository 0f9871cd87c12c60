-- May a visitor open a new chat? Its block, then both hourly allowances (its token and its
-- address), in one call shared by every process.
-- KEYS: none
-- ARGV: P, NOW, visitor id, token counter suffix, address counter suffix (hashed: no client
--       address is stored), window s
-- Returns: {blocked (0|1), chats counted for the token, for the address}, this one included;
--          a blocked visitor is not counted
if redis.call('EXISTS', k_blocked(ARGV[3])) == 1 then return {1, 0, 0} end
local function count(suffix)
  local key = k_counter(suffix)
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, tonumber(ARGV[6])) end
  return n
end
return {0, count(ARGV[4]), count(ARGV[5])}
