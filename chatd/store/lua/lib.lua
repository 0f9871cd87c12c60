-- Shared helpers, prepended to every script together with the k_*() key functions that
-- chatd/store/keys.py generates. Every script receives ARGV[1] = key prefix, ARGV[2] = mode
-- ('d': publications are deferred until the writes reach the replicas; see scripts.py).
local P = ARGV[1]
-- One clock for the whole deployment: Redis's. A process whose clock is off must not reorder
-- the queue, expire offers early or mark agents gone (docs/operations.md, "One clock").
local NOW
do
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- With acks that wait for replicas (mode 'd'), nothing a script does is shown before its
-- writes are on the replicas: events are returned, not published (PUBS), and new messages and
-- notes are marked durable (dseq, dnseq: readers show nothing past them) only once the caller's
-- WAIT has succeeded, by confirm.lua (MARKS). Otherwise both happen here, at once.
local DEFER = ARGV[2] == 'd'
local PUBS, MARKS = {}, {}

local function publish(channel, event)
  if DEFER then
    PUBS[#PUBS + 1] = channel
    PUBS[#PUBS + 1] = cmsgpack.pack(event)
  else
    redis.call('PUBLISH', channel, cmsgpack.pack(event))
  end
end

-- ``field``: 'dseq' (messages) or 'dnseq' (notes); everything up to ``n`` may be shown.
local function mark_durable(sid, field, n)
  if DEFER then
    MARKS[#MARKS + 1] = sid; MARKS[#MARKS + 1] = field; MARKS[#MARKS + 1] = n
  else
    redis.call('HSET', k_session(sid), field, n)
  end
end

-- The last seq that may be shown (messages written but not yet on the replicas are not).
local function visible_seq(skey)
  local seq, dseq = unpack(redis.call('HMGET', skey, 'seq', 'dseq'))
  return tonumber(dseq or seq) or 0
end

local function hget(key, field)
  local v = redis.call('HGET', key, field)
  if v == false then return nil end
  return v
end

-- The field of k_cids(sid) that remembers a client id. Idempotency is per (session, sender):
-- the visitor's cid "1" and a gendarme's cid "1" are two messages; one gendarme's resend from
-- another device is the same sender (kind: 'm' for messages, 'n' for notes).
local function cid_field(kind, from, actor, cid)
  if from == 'visitor' then return kind .. ':v:' .. cid end
  return kind .. ':a:' .. actor .. ':' .. cid
end

-- Appends a visible message (visitor, agent or system) and publishes it. Returns its seq.
-- ``actor`` (the agent's login, the visitor id) scopes the cid; '' for system messages.
local function append_msg(sid, from, text, cid, actor)
  local seq = redis.call('HINCRBY', k_session(sid), 'seq', 1)
  local fields = {'from', from, 'text', text, 'ts', NOW}
  if cid and cid ~= '' then
    fields[#fields + 1] = 'cid'; fields[#fields + 1] = cid
    redis.call('HSET', k_cids(sid), cid_field('m', from, actor, cid), seq)
  end
  redis.call('XADD', k_messages(sid), '0-' .. seq, unpack(fields))
  mark_durable(sid, 'dseq', seq)
  publish(k_session_channel(sid), {e = 'msg', sid = sid, seq = seq, from = from, text = text,
                                   ts = NOW, cid = cid or ''})
  return seq
end

-- Gives back the capacity a session held on an agent (offered or active).
local function release_load(login, weight, sid)
  local akey = k_agent(login)
  local load = redis.call('HINCRBY', akey, 'load', -weight)
  if load < 0 then redis.call('HSET', akey, 'load', 0); load = 0 end
  if redis.call('ZSCORE', k_available(), login) then
    redis.call('ZADD', k_available(), load, login)
  end
  redis.call('SREM', k_agent_sessions(login), sid)
  return load
end

local function take_load(login, weight)
  local load = redis.call('HINCRBY', k_agent(login), 'load', weight)
  if redis.call('ZSCORE', k_available(), login) then
    redis.call('ZADD', k_available(), load, login)
  end
  return load
end

-- Puts a session back in its topic's queue: at its original place, or at the very front
-- (before every normal arrival, keeping arrival order among those sent to the front).
local function requeue(sid, front)
  local skey = k_session(sid)
  local topic, qscore = unpack(redis.call('HMGET', skey, 'topic', 'qscore'))
  local score = tonumber(qscore)
  if front then
    score = tonumber(redis.call('HGET', skey, 'created')) - 1e13
    redis.call('HSET', skey, 'qscore', score)
  end
  redis.call('HSET', skey, 'state', 'queued', 'agent', '', 'offer_agent', '', 'offer_deadline', 0)
  redis.call('ZREM', k_offers(), sid)
  redis.call('ZADD', k_queue(topic), score, sid)
  publish(k_session_channel(sid), {e = 'queued', sid = sid, topic = topic})
end

-- Remembers that an agent let this offer go, so that the next run offers it to someone else.
local function mark_declined(sid, login)
  local skey = k_session(sid)
  local prev = hget(skey, 'declined') or ''
  redis.call('HSET', skey, 'declined', prev .. ' ' .. login .. '=' .. NOW)
end

-- Why an accept/decline cannot be done: 'conflict' when the offer was this agent's and is gone
-- (expired, declined, already accepted), 'not_found' when it never was (or no such session).
local function offer_refusal(state, agent, declined, login)
  if not state then return 'not_found' end
  if agent == login or (declined and string.find(declined, ' ' .. login .. '=', 1, true)) then
    return 'conflict'
  end
  return 'not_found'
end

-- Ends an offer that was not accepted (declined, expired, agent gone, visitor left).
local function revoke_offer(sid, reason, back_to_queue)
  local skey = k_session(sid)
  local login, weight = unpack(redis.call('HMGET', skey, 'offer_agent', 'weight'))
  if login and login ~= '' then
    release_load(login, tonumber(weight), sid)
    mark_declined(sid, login)
    publish(k_agent_channel(login), {e = 'offer_revoked', sid = sid, reason = reason})
  end
  redis.call('ZREM', k_offers(), sid)
  if back_to_queue then requeue(sid, false) end
end

-- Detaches an active session from its agent, freeing the capacity.
local function detach_agent(sid, reason)
  local skey = k_session(sid)
  local login, weight = unpack(redis.call('HMGET', skey, 'agent', 'weight'))
  if login and login ~= '' then
    release_load(login, tonumber(weight), sid)
    redis.call('HSET', skey, 'prev_agent', login)
    publish(k_agent_channel(login), {e = 'released', sid = sid, reason = reason})
  end
  redis.call('ZREM', k_orphans(), sid)
  return login
end

-- Closes a session for good: frees what it held, schedules its expiry, tells both sides.
local function close_session(sid, by, reason, disposition, retention_ms)
  local skey = k_session(sid)
  local state, topic, assigned_at = unpack(redis.call('HMGET', skey, 'state', 'topic', 'assigned_at'))
  if state == 'queued' then
    redis.call('ZREM', k_queue(topic), sid)
  elseif state == 'offered' then
    revoke_offer(sid, 'visitor_left', false)
  elseif state == 'active' then
    local login = hget(skey, 'agent')
    if login and login ~= '' then
      release_load(login, tonumber(hget(skey, 'weight')), sid)
    end
    local started = tonumber(assigned_at)
    if started and started > 0 then
      local took = NOW - started
      local old = tonumber(redis.call('HGET', k_handling(), topic))
      local avg = took
      if old then avg = math.floor(old * 0.8 + took * 0.2) end
      redis.call('HSET', k_handling(), topic, avg)
    end
  end
  redis.call('ZREM', k_orphans(), sid)
  redis.call('ZREM', k_open(), sid)
  redis.call('ZREM', k_visitors_seen(), sid)
  redis.call('HSET', skey, 'state', 'closed', 'closed_at', NOW, 'by', by, 'reason', reason,
             'disposition', disposition or '')
  redis.call('ZADD', k_closed(), NOW, sid)
  -- a topic may keep its chats for less (or more) time than the deployment's default
  local longest = retention_ms
  for _, spec in ipairs(redis.call('HVALS', k_topics())) do
    local ms = tonumber(string.match(spec, '^-?%d+,%d+,%d+,(%d+)$'))
    if ms and ms > longest then longest = ms end
  end
  local spec = redis.call('HGET', k_topics(), topic)
  local own = spec and tonumber(string.match(spec, '^-?%d+,%d+,%d+,(%d+)$'))
  if own and own > 0 then retention_ms = own end
  for _, key in ipairs({skey, k_messages(sid), k_notes(sid), k_cids(sid)}) do
    redis.call('PEXPIRE', key, retention_ms)
  end
  -- the visitor's list of chats outlives the last one closed by the longest retention, and
  -- then goes: it must not grow for ever (create.lua keeps it while a chat is open)
  local vid = hget(skey, 'visitor')
  if vid then redis.call('PEXPIRE', k_visitor_sessions(vid), longest) end
  publish(k_session_channel(sid), {e = 'closed', sid = sid, by = by, reason = reason})
end

-- Marks an agent online again: their orphaned chats are theirs once more.
local function agent_back(login)
  redis.call('ZADD', k_agents_seen(), NOW, login)
  local akey = k_agent(login)
  if hget(akey, 'status') == 'offline' or not hget(akey, 'status') then
    redis.call('HSET', akey, 'status', 'away')
  end
  for _, sid in ipairs(redis.call('SMEMBERS', k_agent_sessions(login))) do
    redis.call('ZREM', k_orphans(), sid)
  end
end
