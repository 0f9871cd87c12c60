-- family: chat
-- Records a photo just stored for this chat, if its sender may still add one: a party of
-- the chat (the visitor who owns it, or the gendarme who holds it), the chat open, and fewer
-- than the allowance of photos. The files are stored first (uploads/api.py): a refusal here
-- has the caller delete them, so no record ever names a file that is not there.
-- KEYS: a chat's (keys.SESSION)
-- ARGV: mode, sid, from ('visitor'|'agent'), actor (visitor id or login), upload id,
--       record ('v|type|width|height|bytes|thumb width|thumb height|ts', first the side
--       'v' or 'a': append.lua reads it), allowance
-- Returns: 'ok', 'not_found' (no such chat, or not the actor's), 'closed', 'full'
local sid, from, actor, id, record, allowance =
  ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
local state, visitor, agent = unpack(redis.call('HMGET', S.hash, 'state', 'visitor', 'agent'))
if not state then return 'not_found' end
if from == 'visitor' then
  if visitor ~= actor then return 'not_found' end
elseif agent ~= actor or (state ~= 'active' and state ~= 'closed') then
  return 'not_found'
end
if state == 'closed' then return 'closed' end
if redis.call('HLEN', S.uploads) >= allowance then return 'full' end
redis.call('HSET', S.uploads, id, record)
return 'ok'
