-- family: routing
-- An agent sets their availability. Available agents are scored by load for matching.
-- KEYS: the routing state (keys.ROUTING), then one queue per topic
-- ARGV: mode, topics, login, status ('available'|'away'), capacity, langs (space-separated),
--       topics (space-separated, '' for all), display name
-- Returns: {status, load, capacity}
local login, status, cap, langs, topics, name =
  ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
local a = get_agent(login) or {held = {}, load = 0}
a.status, a.cap, a.langs, a.topics, a.name = status, cap, langs, topics, name
a.load = tonumber(a.load) or 0
put_agent(login, a)
redis.call('ZADD', R.agents_seen, NOW, login)
if status == 'available' then
  redis.call('ZADD', R.available, a.load, login)
else
  redis.call('ZREM', R.available, login)
end
emit('a', login, {e = 'status', status = status, load = a.load, cap = cap})
return {status, a.load, cap}
