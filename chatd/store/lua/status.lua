-- An agent sets their availability. Available agents are scored by load for matching.
-- KEYS: none
-- ARGV: P, NOW, login, status ('available'|'away'), capacity, langs (space-separated),
--       topics (space-separated, '' for all), display name
-- Returns: {status, load, capacity}
local login, status, cap, langs, topics, name =
  ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local akey = k_agent(login)
redis.call('HSET', akey, 'status', status, 'cap', cap, 'langs', langs, 'topics', topics,
           'name', name)
local load = tonumber(hget(akey, 'load') or '0')
if not hget(akey, 'load') then redis.call('HSET', akey, 'load', 0) end
redis.call('ZADD', k_agents_seen(), NOW, login)
if status == 'available' then
  redis.call('ZADD', k_available(), load, login)
else
  redis.call('ZREM', k_available(), login)
end
publish(k_agent_channel(login), {e = 'status', status = status, load = load, cap = tonumber(cap)})
return {status, load, tonumber(cap)}
