-- family: routing
-- Matches waiting visitors with available agents; safe to run from any process at any time.
-- Topics are scanned by priority (highest first), each queue in arrival order; a visitor goes to
-- the least-loaded eligible agent (topic, language, capacity by topic weight, not recently
-- declined). A topic may only use free slots beyond those reserved for higher-priority topics,
-- and not those of gendarmes who take a higher-priority topic with a live chat waiting for room.
-- A live visitor disconnected for more than the absent skip (CHATD_ABSENT_SKIP_S) keeps their
-- place but is passed over until they are back (presence.lua): a gendarme's slot goes to
-- someone who is there. Chats left for later are offered whatever their visitor does.
-- KEYS: the routing state (keys.ROUTING), then one queue per topic
-- ARGV: mode, topics, offer timeout ms, direct (1|0), language fallback ms, decline cooldown
--       ms, max matches, absent skip ms
-- Returns: the number of matches made
local offer_ms, direct, fallback_ms, cooldown_ms, max_matches, absent_ms =
  tonumber(ARGV[3]), ARGV[4] == '1', tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]),
  tonumber(ARGV[8])
-- each queue is read in pages; those passed over (absent) do not count against the 50 heads
-- considered, but no more than SCAN_MAX entries of one queue are read in one run
local PAGE, HEADS, SCAN_MAX = 50, 50, 1000

-- nobody waiting (the usual case, run every tick): done before reading every agent's record
local waiting = false
for _, queue in pairs(R.queue) do
  if redis.call('ZCARD', queue) > 0 then
    waiting = true
    break
  end
end
if not waiting then return 0 end

local raw = redis.call('ZRANGE', R.available, 0, -1)
if #raw == 0 then return 0 end
local agents = {}
local free_total = 0
for _, login in ipairs(raw) do
  local a = get_agent(login)
  if a then
    a.login = login
    a.cap, a.load = tonumber(a.cap) or 0, tonumber(a.load) or 0
    a.any_topic = (a.topics == nil or a.topics == '')
    a.lang_list = ' ' .. (a.langs or '') .. ' '
    a.topic_list = ' ' .. (a.topics or '') .. ' '
    agents[#agents + 1] = a
    if a.cap > a.load then free_total = free_total + (a.cap - a.load) end
  end
end
if free_total <= 0 then return 0 end

local traw = redis.call('HGETALL', R.topics)
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

local function takes(a, topic)
  return a.any_topic or string.find(a.topic_list, ' ' .. topic .. ' ', 1, true)
end

local function pick(topic, lang, weight, declined, any_lang)
  local best = nil
  for _, a in ipairs(agents) do
    if a.cap - a.load >= weight and not a.kept
      and takes(a, topic)
      and (any_lang or string.find(a.lang_list, ' ' .. lang .. ' ', 1, true))
      and not declined_recently(declined, a.login)
      and (best == nil or a.load < best.load) then
      best = a
    end
  end
  return best
end

local function stored(a)  -- the record as kept (without this run's helper fields)
  return {status = a.status, cap = a.cap, load = a.load, langs = a.langs, topics = a.topics,
          name = a.name, held = a.held}
end

local matches = 0
for _, t in ipairs(topics) do
  if matches >= max_matches or free_total <= 0 then break end
  local queue = R.queue[t.id]
  local keep = reserved_above(t.prio)
  local starved = false  -- a live chat of this topic that no gendarme has room for now
  local from, heads, scanned, stop = 0, 0, 0, (queue == nil)
  while not stop do
    local page = redis.call('ZRANGE', queue, from, from + PAGE - 1)
    local removed = 0  -- taken out of the queue from this page: the next one starts sooner
    for _, sid in ipairs(page) do
      if matches >= max_matches or heads >= HEADS then
        stop = true
        break
      end
      scanned = scanned + 1
      local route = get_route(sid)
      if not route or route.st ~= 'queued' then
        redis.call('ZREM', queue, sid)  -- stale entry: repair, never serve twice
        removed = removed + 1
      elseif route.async ~= 1 and route.vst == 'g'
        and NOW - (tonumber(route.vsince) or NOW) > absent_ms then
        -- away too long: keeps their place, offered once back (presence.lua kicks matching)
      elseif free_total - (tonumber(route.weight) or t.weight) < keep then
        -- no room for the line's next chat: what frees up is kept for it (below), since under
        -- load slots free up one at a time and a chat of two would otherwise wait for as long
        -- as chats of one keep coming; not when slots are reserved above it, which may never
        -- leave it room (nobody may come for the topics they are kept for)
        if route.async ~= 1 and keep == 0 then starved = true end
        stop = true
        break
      else
        heads = heads + 1
        local weight = tonumber(route.weight) or t.weight
        local waited = NOW - tonumber(route.created)
        local a = pick(t.id, route.lang, weight, route.declined, false)
        if a == nil and waited >= fallback_ms then
          a = pick(t.id, route.lang, weight, route.declined, true)
        end
        if a == nil and route.async ~= 1
          and pick(t.id, route.lang, weight, route.declined, true) == nil then
          starved = true
        end
        if a ~= nil then
          line_moved(route)
          redis.call('ZREM', queue, sid)
          removed = removed + 1
          a.load = a.load + weight
          hold(a, sid)
          if redis.call('ZSCORE', R.available, a.login) then
            redis.call('ZADD', R.available, a.load, a.login)
          end
          put_agent(a.login, stored(a))
          free_total = free_total - weight
          matches = matches + 1
          if not route.order then route.order = redis.call('INCR', R.offer_order) end
          if direct then
            move(route, 'assign')
            route.agent, route.name, route.assigned_at = a.login, a.name or a.login, NOW
            emit('a', a.login, {e = 'assigned', sid = sid, at = NOW})
          else
            move(route, 'offer')
            route.offer_agent, route.deadline, route.offered_at = a.login, NOW + offer_ms, NOW
            redis.call('ZADD', R.offers, route.deadline, sid)
            emit('a', a.login, {e = 'offer', sid = sid, topic = t.id, lang = route.lang,
                                waited_ms = waited, expires_ms = offer_ms,
                                preview = route.preview or '', async = route.async == 1})
          end
          put_route(sid, route)
          sync(sid, route, '')
        end
      end
    end
    if #page < PAGE or scanned >= SCAN_MAX then stop = true end
    from = from + #page - removed
  end
  if starved then
    -- what frees up on the gendarmes who take this topic is kept for it: lower priorities
    -- taking one slot at a time would never let a chat of two slots in (priority inversion)
    for _, a in ipairs(agents) do
      if takes(a, t.id) then a.kept = true end
    end
  end
end
return matches
