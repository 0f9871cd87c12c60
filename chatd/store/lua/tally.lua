-- family: reports
-- A chat's figures, added to the hour it started in (per topic and language), to that day and
-- that month (per topic) and to the hour's and the day's totals; each key is kept `keep`
-- seconds from now, a month one month more (it outlives its days). One call where there were
-- five HINCRBY and an EXPIRE per key, each a command of its own for Python to send and read.
-- KEYS: the hour, the day, the month, the hour's totals, the day's totals
-- ARGV: mode, topic, lang, keep s, then name, n pairs
-- Returns: 1
local topic, lang, keep = ARGV[2], ARGV[3], tonumber(ARGV[4])
for i = 5, #ARGV - 1, 2 do
  local name, n = ARGV[i], ARGV[i + 1]
  redis.call('HINCRBY', P.hour, topic .. '|' .. lang .. '|' .. name, n)
  redis.call('HINCRBY', P.day, topic .. '|' .. name, n)
  redis.call('HINCRBY', P.month, topic .. '|' .. name, n)
  redis.call('HINCRBY', P.hour_all, name, n)
  redis.call('HINCRBY', P.day_all, name, n)
end
for _, key in ipairs({P.hour, P.day, P.hour_all, P.day_all}) do
  redis.call('EXPIRE', key, keep)
end
redis.call('EXPIRE', P.month, keep + 31 * 86400)
return 1
