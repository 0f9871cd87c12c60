-- family: chat
-- Closes a chat, first in its own hash (from here on nobody may write in it), with its
-- retention; route_close.lua, the visitor's record and the closed index follow
-- (docs/operations.md, "Interrupted operations": the repair finishes a close cut short).
-- KEYS: a chat's (keys.SESSION)
-- ARGV: mode, sid, by ('visitor'|'agent'|'system'), actor (visitor id or login; '' for the
--       system), reason, disposition, retention ('MS TOPIC=MS ...': the default, then each
--       topic's), rating ('' or 1-5), comment
-- Returns: {status, visitor id, topic, closed_at}: status 'ok', 'closed' (already), or
--          {'not_found'} (not the actor's, or no such chat)
local sid, by, actor, reason, disposition, spec, rating, comment =
  ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local state, visitor, agent, topic, closed_at = unpack(redis.call('HMGET', S.hash, 'state',
  'visitor', 'agent', 'topic', 'closed_at'))
if not state then return {'not_found'} end
if by == 'visitor' and visitor ~= actor then return {'not_found'} end
if by == 'agent' and (agent ~= actor or (state ~= 'active' and state ~= 'closed')) then
  return {'not_found'}
end
if state == 'closed' then return {'closed', visitor, topic, closed_at} end
if rating ~= '' then redis.call('HSET', S.hash, 'rating', rating, 'comment', comment) end
redis.call('HSET', S.hash, 'state', 'closed', 'closed_at', NOW, 'by', by, 'reason', reason,
           'disposition', disposition)
local retention = tonumber(string.match(spec, '^(%d+)'))
for t, ms in string.gmatch(spec, '(%S+)=(%d+)') do
  if t == topic then retention = tonumber(ms) end
end
for _, key in ipairs({S.hash, S.msgs, S.notes, S.cids}) do
  redis.call('PEXPIRE', key, retention)
end
publish(S.channel, {e = 'closed', sid = sid, by = by, reason = reason})
return {'ok', visitor, topic, NOW}
