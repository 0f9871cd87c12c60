-- Admits a new chat, creates the session, queues it, and stores the optional first message as
-- seq 1. Admission first: a blocked visitor, one with an open chat, or one over an hourly
-- allowance (its token, its address), gets no new chat; the allowances are counted here,
-- shared by every process.
-- KEYS: none (names come from k_*(); the session lives under its {sid} tag, the queue under {m})
-- ARGV: P, NOW, sid, visitor id, topic, lang, priority, weight, first text ('' for none), cid,
--       token counter name, address counter name (hashed: no client address is stored),
--       counter window s, chats allowed per token, chats allowed per address
-- Returns: {status, position}: status 'ok', 'blocked', 'rate_token', 'rate_ip'; position is
--          1-based among the topic's waiting visitors (0: already offered); or
--          {'conflict', 0, sid, topic} when the visitor has an open chat (that one)
local sid, vid, topic, lang, prio, weight, text, cid =
  ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
if redis.call('EXISTS', k_blocked(vid)) == 1 then return {'blocked', 0} end
-- the visitor's last chat, so that the next gendarme knows how it ended
local earlier, prev, prev_at = 0, '', -1
local gone = {}
for _, other in ipairs(redis.call('SMEMBERS', k_visitor_sessions(vid))) do
  local state, closed_at, otopic, reason, disposition = unpack(redis.call('HMGET',
    k_session(other), 'state', 'closed_at', 'topic', 'reason', 'disposition'))
  if state and state ~= 'closed' then return {'conflict', 0, other, otopic} end
  if not state then gone[#gone + 1] = other end  -- deleted after its retention
  if state then
    earlier = earlier + 1
    local at = tonumber(closed_at) or 0
    if at > prev_at then
      prev_at = at
      prev = at .. '|' .. (otopic or '') .. '|' .. (reason or '') .. '|' .. (disposition or '')
    end
  end
end
-- counted only now: a retried start (its chat is open) takes nothing of the allowances
local function count(suffix)
  local key = k_counter(suffix .. ':' .. math.floor(NOW / 3600000))  -- this hour's
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, tonumber(ARGV[13])) end
  return n
end
if count(ARGV[11]) > tonumber(ARGV[14]) then return {'rate_token', 0} end
if count(ARGV[12]) > tonumber(ARGV[15]) then return {'rate_ip', 0} end
local skey = k_session(sid)
redis.call('HSET', skey, 'state', 'queued', 'topic', topic, 'lang', lang, 'prio', prio,
           'weight', weight, 'visitor', vid, 'created', NOW, 'qscore', NOW, 'seq', 0, 'nseq', 0,
           'dseq', 0, 'dnseq', 0,
           'agent', '', 'offer_agent', '', 'declined', '', 'earlier', earlier, 'prev', prev)
redis.call('ZADD', k_queue(topic), NOW, sid)
redis.call('ZADD', k_open(), NOW, sid)
redis.call('ZADD', k_visitors_seen(), NOW, sid)
if #gone > 0 then redis.call('SREM', k_visitor_sessions(vid), unpack(gone)) end
redis.call('SADD', k_visitor_sessions(vid), sid)
redis.call('PERSIST', k_visitor_sessions(vid))  -- kept while a chat is open (close_session)
if text ~= '' then
  append_msg(sid, 'visitor', text, cid, '')
end
return {'ok', redis.call('ZRANK', k_queue(topic), sid) + 1}
