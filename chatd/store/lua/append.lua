-- Appends a message or an internal note, once per cid, after checking the sender owns the session.
-- KEYS: none (session keys from k_*(sid))
-- ARGV: P, NOW, sid, kind ('msg'|'note'), from ('visitor'|'agent'), actor (visitor id or login),
--       text, cid, role ('agent'|'supervisor')
-- Returns: {status, seq} with status 'ok' (new), 'dup' (cid seen: the original seq),
--          'not_found' (no such session, or not the actor's), 'closed' (session is over)
local sid, kind, from, actor, text, cid, role =
  ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local skey = k_session(sid)
local state, visitor, agent = unpack(redis.call('HMGET', skey, 'state', 'visitor', 'agent'))
if not state then return {'not_found', 0} end
if from == 'visitor' then
  if visitor ~= actor then return {'not_found', 0} end
elseif agent ~= actor then
  return {'not_found', 0}
end
local cidkey = cid_field(kind == 'note' and 'n' or 'm', from, actor, cid)
if cid ~= '' then
  local seen = redis.call('HGET', k_cids(sid), cidkey)
  if seen then return {'dup', tonumber(seen)} end
end
if state == 'closed' then return {'closed', 0} end
if from == 'agent' and state ~= 'active' then return {'not_found', 0} end
if kind == 'msg' then
  return {'ok', append_msg(sid, from, text, cid, actor)}
end
local nseq = redis.call('HINCRBY', skey, 'nseq', 1)
redis.call('XADD', k_notes(sid), '0-' .. nseq, 'agent', actor, 'text', text, 'ts', NOW, 'cid', cid)
if cid ~= '' then redis.call('HSET', k_cids(sid), cidkey, nseq) end
publish(k_session_channel(sid), {e = 'note', sid = sid, nseq = nseq, agent = actor, text = text,
                                 ts = NOW, cid = cid})
return {'ok', nseq}
