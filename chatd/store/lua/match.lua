-- Matches waiting visitors with available agents; safe to run from any process at any time.
-- Topics are scanned by priority (highest first), each queue in arrival order; a visitor goes to
-- the least-loaded eligible agent (topic, language, capacity by topic weight, not recently
-- declined). A topic may only use free slots beyond those reserved for higher-priority topics.
-- KEYS: none (matching state under the {m} tag, sessions under their {sid} tags)
-- ARGV: P, NOW, offer timeout ms, direct (1|0), language fallback ms, decline cooldown ms,
--       max matches
-- Returns: the number of matches made
local offer_ms, direct, fallback_ms, cooldown_ms, max_matches =
  tonumber(ARGV[3]), ARGV[4] == '1', tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])

local raw = redis.call('ZRANGE', k_available(), 0, -1, 'WITHSCORES')
if #raw == 0 then return 0 end
local agents = {}
local free_total = 0
for i = 1, #raw, 2 do
  local login = raw[i]
  local cap, load, langs, topics, name = unpack(redis.call('HMGET', k_agent(login),
    'cap', 'load', 'langs', 'topics', 'name'))
  local a = {login = login, cap = tonumber(cap) or 0, load = tonumber(load) or 0,
             langs = ' ' .. (langs or '') .. ' ', topics = ' ' .. (topics or '') .. ' ',
             any_topic = (topics == nil or topics == false or topics == ''), name = name or login}
  agents[#agents + 1] = a
  if a.cap > a.load then free_total = free_total + (a.cap - a.load) end
end
if free_total <= 0 then return 0 end

local traw = redis.call('HGETALL', k_topics())
local topics = {}
for i = 1, #traw, 2 do
  local prio, weight, reserved = string.match(traw[i + 1], '^(-?%d+),(%d+),(%d+)')
  topics[#topics + 1] = {id = traw[i], prio = tonumber(prio), weight = tonumber(weight),
                         reserved = tonumber(reserved)}
end
table.sort(topics, function(a, b) return a.prio > b.prio or (a.prio == b.prio and a.id < b.id) end)

local function reserved_above(prio)
  local sum = 0
  for _, t in ipairs(topics) do
    if t.prio > prio then sum = sum + t.reserved end
  end
  return sum
end

local function declined_recently(declined, login)
  if not declined or declined == '' then return false end
  for who, at in string.gmatch(declined, '(%S+)=(%d+)') do
    if who == login and NOW - tonumber(at) < cooldown_ms then return true end
  end
  return false
end

local function pick(topic, lang, weight, declined, any_lang)
  local best = nil
  for _, a in ipairs(agents) do
    if a.cap - a.load >= weight
      and (a.any_topic or string.find(a.topics, ' ' .. topic .. ' ', 1, true))
      and (any_lang or string.find(a.langs, ' ' .. lang .. ' ', 1, true))
      and not declined_recently(declined, a.login)
      and (best == nil or a.load < best.load) then
      best = a
    end
  end
  return best
end

local matches = 0
for _, t in ipairs(topics) do
  if matches >= max_matches or free_total <= 0 then break end
  local keep = reserved_above(t.prio)
  local heads = redis.call('ZRANGE', k_queue(t.id), 0, 49)
  for _, sid in ipairs(heads) do
    if matches >= max_matches or free_total - t.weight < keep then break end
    local skey = k_session(sid)
    local state, lang, created, declined, weight = unpack(redis.call('HMGET', skey,
      'state', 'lang', 'created', 'declined', 'weight'))
    weight = tonumber(weight) or t.weight
    if state ~= 'queued' then
      redis.call('ZREM', k_queue(t.id), sid)  -- stale entry: repair, never serve twice
    else
      local waited = NOW - tonumber(created)
      local a = pick(t.id, lang, weight, declined, false)
      if a == nil and waited >= fallback_ms then a = pick(t.id, lang, weight, declined, true) end
      if a ~= nil then
        redis.call('ZREM', k_queue(t.id), sid)
        a.load = take_load(a.login, weight)
        free_total = free_total - weight
        redis.call('SADD', k_agent_sessions(a.login), sid)
        matches = matches + 1
        if direct then
          if not hget(skey, 'offer_order') then
            redis.call('HSET', skey, 'offer_order', redis.call('INCR', k_offer_order()))
          end
          redis.call('HSET', skey, 'state', 'active', 'agent', a.login, 'assigned_at', NOW,
                     'agent_name', a.name)
          publish(k_agent_channel(a.login), {e = 'assigned', sid = sid, at = NOW})
          publish(k_session_channel(sid), {e = 'assigned', sid = sid, agent = a.login,
                                           name = a.name})
        else
          local deadline = NOW + offer_ms
          if not hget(skey, 'offer_order') then
            redis.call('HSET', skey, 'offer_order', redis.call('INCR', k_offer_order()))
          end
          redis.call('HSET', skey, 'state', 'offered', 'offer_agent', a.login,
                     'offer_deadline', deadline, 'offered_at', NOW)
          redis.call('ZADD', k_offers(), deadline, sid)
          local first = redis.call('XRANGE', k_messages(sid), '-', '+', 'COUNT', 1)
          local preview = ''
          if #first > 0 then
            local f = first[1][2]
            for i = 1, #f, 2 do if f[i] == 'text' then preview = string.sub(f[i + 1], 1, 280) end end
          end
          publish(k_agent_channel(a.login), {e = 'offer', sid = sid, topic = t.id, lang = lang,
            waited_ms = waited, expires_ms = offer_ms, preview = preview})
          publish(k_session_channel(sid), {e = 'offered', sid = sid})
        end
      end
    end
  end
end
return matches
