-- family: chat
-- Closes a chat, first in its own hash (from here on nobody may write in it), with its
-- retention; route_close.lua, the visitor's record and the closed index follow
-- (docs/operations.md, "Interrupted operations": the repair finishes a close cut short).
-- A gendarme's close of a chat that ended without them (the citizen left, quick exit) and
-- that they held when it ended records the disposition they give, once: how a chat ended
-- is the gendarme's to say even when the citizen went first.
-- KEYS: a chat's (keys.SESSION)
-- ARGV: mode, sid, by ('visitor'|'agent'|'system'), actor (visitor id or login; '' for the
--       system), reason, disposition, retention ('MS TOPIC=MS ...': the default, then each
--       topic's), rating ('' or 1-5), comment
-- Returns: {status, visitor id, topic, closed_at, by, reason, counted}: status 'ok',
--          'closed' (already), 'disposed' (already closed; the disposition is recorded now:
--          ``counted`` is the disposition the reports counted the chat with, '' if they have
--          not counted it yet), or {'not_found'} (not the actor's, or no such chat),
--          {'conflict'} (a late disposition when one is recorded already)
local sid, by, actor, reason, disposition, spec, rating, comment =
  ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local state, visitor, agent, topic, closed_at, was_by, was_reason, had = unpack(redis.call(
  'HMGET', S.hash, 'state', 'visitor', 'agent', 'topic', 'closed_at', 'by', 'reason',
  'disposition'))
if not state then return {'not_found'} end
if by == 'visitor' and visitor ~= actor then return {'not_found'} end
if by == 'agent' and (agent ~= actor or (state ~= 'active' and state ~= 'closed')) then
  return {'not_found'}
end
if state == 'closed' then
  if by == 'agent' and disposition ~= '' then
    if had and had ~= '' then return {'conflict'} end
    redis.call('HSET', S.hash, 'disposition', disposition)
    local counted = ''
    if redis.call('HEXISTS', S.hash, 'counted_c') == 1 then  -- counted without one
      counted = redis.call('HGET', S.hash, 'counted_disp') or 'none'
      redis.call('HSET', S.hash, 'counted_disp', disposition)
    end
    return {'disposed', visitor, topic, closed_at, was_by, was_reason, counted}
  end
  return {'closed', visitor, topic, closed_at, was_by, was_reason, ''}
end
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
return {'ok', visitor, topic, NOW, by, reason, ''}
