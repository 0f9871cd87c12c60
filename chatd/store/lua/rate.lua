-- family: chat
-- The visitor rates a closed chat, once.
-- KEYS: a chat's (keys.SESSION)
-- ARGV: mode, sid, visitor id, rating, comment
-- Returns: 'ok', 'not_found', 'conflict' (open, or already rated)
local sid, vid, rating, comment = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local state, visitor, old = unpack(redis.call('HMGET', S.hash, 'state', 'visitor', 'rating'))
if not state or visitor ~= vid then return 'not_found' end
if state ~= 'closed' or (old and old ~= '') then return 'conflict' end
redis.call('HSET', S.hash, 'rating', rating, 'comment', comment)
return 'ok'
