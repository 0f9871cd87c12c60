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
-- Fields of S.hash this script has seen absent: without DEFER an absent dseq means "all
-- shown", so mark_durable need not write it (one call less per message; append.lua).
local ABSENT = {}

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

-- An offer of a chat that was handed on (transfer, reassign) says by whom, and their note,
-- whichever script makes it (transfer.lua, or match.lua for a chat sent to a topic): the
-- routing record keeps them (ho_from, ho_name, ho_note) until the chat is held again
-- (put_route). An offer that names its sender itself (transfer.lua) is left as it is.
local function handed_on(event)
  if event.e ~= 'offer' or event.from_agent then return end
  local raw = redis.call('HGET', R.routes, event.sid)
  if not raw then return end
  local route = cmsgpack.unpack(raw)
  if route.ho_from and route.ho_from ~= '' then
    event.from_agent, event.from_agent_name = route.ho_from, route.ho_name or route.ho_from
    if route.ho_note and route.ho_note ~= '' then event.note = route.ho_note end
  end
end

-- An event for a gendarme ('a', login) or a chat ('s', sid), from a routing script: Python
-- publishes it once the chats' hashes agree with the routing state (SYNCS).
local function emit(kind, target, event)
  handed_on(event)
  LATER[#LATER + 1] = kind
  LATER[#LATER + 1] = target
  LATER[#LATER + 1] = cmsgpack.pack(event)
end

-- ``field``: 'dseq' (messages) or 'dnseq' (notes); everything up to ``n`` may be shown.
local function mark_durable(field, n)
  if DEFER then
    MARKS[#MARKS + 1] = field
    MARKS[#MARKS + 1] = n
  elseif not ABSENT[field] then
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

-- Appends an internal note (never shown to the visitor), signed by a gendarme's login and
-- display name, and publishes it. ``cid`` '' when the note has none (a transfer's note).
local function append_note(sid, login, name, text, cid)
  local nseq = redis.call('HINCRBY', S.hash, 'nseq', 1)
  redis.call('XADD', S.notes, '0-' .. nseq, 'agent', login, 'name', name, 'text', text,
             'ts', NOW, 'cid', cid)
  mark_durable('dnseq', nseq)
  publish(S.channel, {e = 'note', sid = sid, nseq = nseq, agent = login, name = name,
                      text = text, ts = NOW, cid = cid})
  return nseq
end

-- Appends a visible message (visitor, agent or system) to this chat and publishes it.
-- ``actor`` (the agent's login, the visitor id) scopes the cid; '' for system messages.
-- ``photo``: nil, or a photo of the chat as messages keep it ('id|type|width|height', field
-- 'a' of the entry and of the event; records.py reads it).
local function append_msg(sid, from, text, cid, actor, photo)
  local seq = redis.call('HINCRBY', S.hash, 'seq', 1)
  -- acks that wait for replicas, after a time without (dseq absent: all shown): what came
  -- before is shown, this one only once confirmed
  if DEFER then redis.call('HSETNX', S.hash, 'dseq', seq - 1) end
  local fields = {'from', from, 'text', text, 'ts', NOW}
  if cid and cid ~= '' then
    fields[#fields + 1] = 'cid'; fields[#fields + 1] = cid
    redis.call('HSET', S.cids, cid_field('m', from, actor, cid), seq)
  end
  if from == 'agent' and actor ~= '' then
    fields[#fields + 1] = 'agent'; fields[#fields + 1] = actor
  end
  if photo then
    fields[#fields + 1] = 'a'; fields[#fields + 1] = photo
  end
  redis.call('XADD', S.msgs, '0-' .. seq, unpack(fields))
  mark_durable('dseq', seq)
  publish(S.channel, {e = 'msg', sid = sid, seq = seq, from = from, text = text, ts = NOW,
                      cid = cid or '', a = photo})
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
  if route.st == 'active' then  -- held again: a handoff's offer is over (handed_on)
    route.ho_from, route.ho_name, route.ho_note, route.ho_ver = nil, nil, nil, nil
  end
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
-- ``note`` '' or the system message to append ('transferred', 'agent_gone', 'taken_over');
-- then the internal note that a handoff made at this very version carries (its text, its
-- author's login and name: appended once, with the version).
local function sync(sid, route, note)
  local ho = route.ho_ver ~= nil and route.ho_ver == route.ver and route.ho_note ~= ''
  SYNCS[#SYNCS + 1] = {sid, route.ver, route.st, route.agent or '', route.name or '',
                       route.assigned_at or 0, route.topic, note or '', route.prev_agent or '',
                       ho and route.ho_note or '', ho and route.ho_from or '',
                       ho and route.ho_name or ''}
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

-- The line a chat waits in: its topic's, or the general one when its topic is not among those
-- this script was given (a topic no longer configured: a key name, never nil, for Redis).
local function line_of(route)
  return R.queue[route.topic] and route.topic or 'general'
end

local function queue_of(route)
  return R.queue[line_of(route)]
end

-- A chat leaves its topic's line (taken, left for later, closed while waiting): if it was a
-- live one never offered before, the line moved one place at NOW (once: a chat declined and
-- taken again, or offered and back, moved it already; one left for later was behind every
-- live visitor and moved nobody). The estimates are made of these moves (matching.py): a ring
-- of the last PACE_RING per line, each with how long, of the time since the move before it,
-- someone was waiting in the line (since its head came: no one who came earlier is still
-- there, or they would be the head). A head sent to the front (an orphan, a transfer) came to
-- this line at a time its score does not tell: that wait is not counted. Called while the
-- chat is still in the line, before its record changes.
local function line_moved(route)
  if route.order or route.async == 1 then return end
  local topic = line_of(route)
  local head = redis.call('ZRANGE', R.queue[topic], 0, 0, 'WITHSCORES')
  local since = tonumber(head[2]) or NOW
  if since < 0 then since = NOW end
  local last = tonumber(redis.call('HGET', R.served, topic .. ':last')) or 0
  local n = redis.call('HINCRBY', R.served, topic .. ':n', 1)
  redis.call('HSET', R.served, topic .. ':' .. (n % PACE_RING),
             NOW .. ',' .. math.max(0, NOW - math.max(last, since)), topic .. ':last', NOW)
end

-- Back in its topic's queue: at its original place, or at the very front (before every
-- normal arrival, keeping arrival order among those sent to the front).
local function requeue(sid, route, front)
  if front then route.qscore = tonumber(route.created) - QUEUE_SHIFT end
  route.agent, route.offer_agent, route.deadline = '', '', 0
  redis.call('ZREM', R.offers, sid)
  redis.call('ZADD', queue_of(route), route.qscore, sid)
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

-- A composed script's KEYS from ``from``, ``n`` of them (its steps' keys, in order).
local function keys_part(from, n)
  local out = {}
  for i = from, from + n - 1 do out[#out + 1] = KEYS[i] end
  return out
end
