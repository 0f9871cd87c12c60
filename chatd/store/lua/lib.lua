-- Shared helpers, prepended to every script after the prelude that scripts.py generates: the
-- transition table (states.py) and the script's keys by name (S: a chat's; R: the routing
-- state's, with R.queue[topic]; V: a visitor's). Every script receives ARGV[1] = mode:
-- 'd' (acks wait for replicas: nothing is published or marked shown here; confirm.lua does it
-- once WAIT has succeeded), 'c' (Redis Cluster: SPUBLISH). Routing scripts never publish:
-- what they change must first reach the chats' own hashes (SYNCS), then Python publishes
-- their events (LATER); see scripts.py.
local MODE = ARGV[1]
local DEFER = string.find(MODE, 'd', 1, true) ~= nil
local CLUSTER = string.find(MODE, 'c', 1, true) ~= nil
-- One clock for the whole deployment: Redis's. A process whose clock is off must not reorder
-- the queue, expire offers early or mark agents gone (docs/operations.md, "One clock").
local NOW
do
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local PUBS, MARKS, LATER, SYNCS = {}, {}, {}, {}

-- An event on this chat's own channel (a chat script): published now, or with DEFER held
-- back for confirm.lua.
local function publish(channel, event)
  local payload = cmsgpack.pack(event)
  if DEFER then
    PUBS[#PUBS + 1] = channel
    PUBS[#PUBS + 1] = payload
  else
    redis.call(CLUSTER and 'SPUBLISH' or 'PUBLISH', channel, payload)
  end
end

-- An event for a gendarme ('a', login) or a chat ('s', sid), from a routing script: Python
-- publishes it once the chats' hashes agree with the routing state (SYNCS).
local function emit(kind, target, event)
  LATER[#LATER + 1] = kind
  LATER[#LATER + 1] = target
  LATER[#LATER + 1] = cmsgpack.pack(event)
end

-- ``field``: 'dseq' (messages) or 'dnseq' (notes); everything up to ``n`` may be shown.
local function mark_durable(field, n)
  if DEFER then
    MARKS[#MARKS + 1] = field
    MARKS[#MARKS + 1] = n
  else
    redis.call('HSET', S.hash, field, n)
  end
end

local function hget(key, field)
  local v = redis.call('HGET', key, field)
  if v == false then return nil end
  return v
end

-- The last seq that may be shown (messages written but not yet on the replicas are not).
local function visible_seq()
  local seq, dseq = unpack(redis.call('HMGET', S.hash, 'seq', 'dseq'))
  return tonumber(dseq or seq) or 0
end

-- The field of S.cids that remembers a client id. Idempotency is per (session, sender): the
-- visitor's cid "1" and a gendarme's cid "1" are two messages; one gendarme's resend from
-- another device is the same sender (kind: 'm' for messages, 'n' for notes).
local function cid_field(kind, from, actor, cid)
  if from == 'visitor' then return kind .. ':v:' .. cid end
  return kind .. ':a:' .. actor .. ':' .. cid
end

-- Appends a visible message (visitor, agent or system) to this chat and publishes it.
-- ``actor`` (the agent's login, the visitor id) scopes the cid; '' for system messages.
local function append_msg(sid, from, text, cid, actor)
  local seq = redis.call('HINCRBY', S.hash, 'seq', 1)
  local fields = {'from', from, 'text', text, 'ts', NOW}
  if cid and cid ~= '' then
    fields[#fields + 1] = 'cid'; fields[#fields + 1] = cid
    redis.call('HSET', S.cids, cid_field('m', from, actor, cid), seq)
  end
  if from == 'agent' and actor ~= '' then
    fields[#fields + 1] = 'agent'; fields[#fields + 1] = actor
  end
  redis.call('XADD', S.msgs, '0-' .. seq, unpack(fields))
  mark_durable('dseq', seq)
  publish(S.channel, {e = 'msg', sid = sid, seq = seq, from = from, text = text, ts = NOW,
                      cid = cid or ''})
  return seq
end

-- Routing records and gendarmes' records: one msgpack map each, in one hash per kind.
local function get_route(sid)
  local raw = redis.call('HGET', R.routes, sid)
  if not raw then return nil end
  return cmsgpack.unpack(raw)
end

local function put_route(sid, route)
  route.changed = NOW  -- the repair leaves a recent change to its own sync
  redis.call('HSET', R.routes, sid, cmsgpack.pack(route))
end

local function get_agent(login)
  local raw = redis.call('HGET', R.agents, login)
  if not raw then return nil end
  local a = cmsgpack.unpack(raw)
  a.held = a.held or {}
  return a
end

local function put_agent(login, a)
  redis.call('HSET', R.agents, login, cmsgpack.pack(a))
end

local function holds(a, sid)
  for _, s in ipairs(a.held) do if s == sid then return true end end
  return false
end

local function hold(a, sid)
  if not holds(a, sid) then a.held[#a.held + 1] = sid end
end

local function unhold(a, sid)
  local kept = {}
  for _, s in ipairs(a.held) do if s ~= sid then kept[#kept + 1] = s end end
  a.held = kept
end

-- What a chat's own hash must be told after a routing change (session_sync.lua), and why:
-- ``note`` '' or the system message to append ('transferred', 'agent_gone').
local function sync(sid, route, note)
  SYNCS[#SYNCS + 1] = {sid, route.ver, route.st, route.agent or '', route.name or '',
                       route.assigned_at or 0, route.topic, note or '', route.prev_agent or ''}
end

-- The available set is scored by load; it follows every change of a gendarme's load.
local function set_load(login, a, load)
  if load < 0 then load = 0 end
  a.load = load
  if redis.call('ZSCORE', R.available, login) then
    redis.call('ZADD', R.available, load, login)
  end
end

-- Gives back the capacity a chat held on a gendarme (offered or active).
local function release(login, route, sid)
  local a = get_agent(login)
  if not a then return end
  set_load(login, a, (tonumber(a.load) or 0) - (tonumber(route.weight) or 1))
  unhold(a, sid)
  put_agent(login, a)
end

local function take(login, a, route, sid)
  set_load(login, a, (tonumber(a.load) or 0) + (tonumber(route.weight) or 1))
  hold(a, sid)
  put_agent(login, a)
end

-- Back in its topic's queue: at its original place, or at the very front (before every
-- normal arrival, keeping arrival order among those sent to the front).
local function requeue(sid, route, front)
  if front then route.qscore = tonumber(route.created) - 1e13 end
  route.agent, route.offer_agent, route.deadline = '', '', 0
  redis.call('ZREM', R.offers, sid)
  redis.call('ZADD', R.queue[route.topic] or R.queue.general, route.qscore, sid)
end

-- Remembers that an agent let this offer go, so that the next run offers it to someone else.
local function mark_declined(route, login)
  route.declined = (route.declined or '') .. ' ' .. login .. '=' .. NOW
end

-- Why an accept/decline cannot be done: 'conflict' when the offer was this agent's and is gone
-- (expired, declined, already accepted), 'not_found' when it never was (or no such chat).
local function offer_refusal(route, login)
  if not route then return 'not_found' end
  if route.agent == login or string.find(route.declined or '', ' ' .. login .. '=', 1, true) then
    return 'conflict'
  end
  return 'not_found'
end

-- Ends an offer that was not accepted (declined, expired, agent gone): back to its place.
local function revoke_offer(sid, route, event, reason)
  local login = route.offer_agent
  if login and login ~= '' then
    release(login, route, sid)
    mark_declined(route, login)
    emit('a', login, {e = 'offer_revoked', sid = sid, reason = reason})
  end
  move(route, event)
  requeue(sid, route, false)
end

-- The visitor's presence in a chat (docs/protocol.md, "Presence"), kept in its routing record
-- because matching reads it (an absent visitor is not offered): route.vst 'c' (connected) or
-- 'g' (gone) since route.vsince (epoch ms), and route.vp, the processes that hold a visitor
-- connection to it (one tab closing must not say gone while another, on any process, is
-- open). R.present lists the chats whose visitor counts as connected, scored by their last
-- heartbeat: the reaper finds there those whose processes all fell silent (a process killed
-- with SIGKILL says no goodbye). The holders are told by an event on the chat's channel.
local function set_presence(sid, route, state, since)
  route.vst, route.vsince = state, since
  if state == 'c' then
    redis.call('ZADD', R.present, NOW, sid)
  else
    route.vp = {}
    redis.call('ZREM', R.present, sid)
  end
  emit('s', sid, {e = 'presence', sid = sid, state = state == 'c' and 'connected' or 'gone',
                  since = since})
end

-- A presence change is not a routing change: the record is written without moving its
-- ``changed`` clock, which the repair reads (put_route).
local function put_presence(sid, route)
  redis.call('HSET', R.routes, sid, cmsgpack.pack(route))
end
