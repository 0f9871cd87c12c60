-- family: routing
-- An agent's connection said hello: mark them seen and give them back their orphaned chats.
-- KEYS: the routing state (keys.ROUTING), then one queue per topic
-- ARGV: mode, topics, login, account capacity, langs, topics, display name
-- Returns: {status, {sid, state, topic, assigned_at, ...}} for the agent's open chats
local login = ARGV[3]
local a = get_agent(login) or {held = {}, load = 0, cap = tonumber(ARGV[4])}
if a.status == 'offline' or not a.status then a.status = 'away' end
a.langs, a.topics, a.name = ARGV[5], ARGV[6], ARGV[7]
a.cap = a.cap or tonumber(ARGV[4])
a.load = a.load or 0
redis.call('ZADD', R.agents_seen, NOW, login)
local out, kept = {}, {}
for _, sid in ipairs(a.held) do
  local route = get_route(sid)
  if route and ((route.st == 'active' and route.agent == login)
                or (route.st == 'offered' and route.offer_agent == login)) then
    kept[#kept + 1] = sid
    redis.call('ZREM', R.orphans, sid)
    if route.st == 'active' then
      out[#out + 1] = sid; out[#out + 1] = route.st; out[#out + 1] = route.topic
      out[#out + 1] = route.assigned_at or 0
    end
  end
end
a.held = kept
put_agent(login, a)
return {a.status, out}
