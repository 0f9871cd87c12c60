-- Ends a session at a participant's request.
-- KEYS: none
-- ARGV: P, NOW, sid, by ('visitor'|'agent'|'system'), actor (visitor id or login; '' for system),
--       reason, disposition, retention ms, rating ('' or 1-5), comment
-- Returns: 'ok', 'not_found' (not the actor's), 'closed' (already closed)
local sid, by, actor, reason, disposition, retention, rating, comment =
  ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9], ARGV[10]
local skey = k_session(sid)
local state, visitor, agent = unpack(redis.call('HMGET', skey, 'state', 'visitor', 'agent'))
if not state then return 'not_found' end
if by == 'visitor' and visitor ~= actor then return 'not_found' end
if by == 'agent' and (agent ~= actor or (state ~= 'active' and state ~= 'closed')) then
  return 'not_found'
end
if state == 'closed' then return 'closed' end
if rating ~= '' then redis.call('HSET', skey, 'rating', rating, 'comment', comment) end
close_session(sid, by, reason, disposition, retention)
return 'ok'
