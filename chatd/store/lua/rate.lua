-- The visitor rates a closed chat, once.
-- KEYS: none
-- ARGV: P, NOW, sid, visitor id, rating, comment
-- Returns: 'ok', 'not_found', 'conflict' (open, or already rated)
local sid, vid, rating, comment = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local skey = k_session(sid)
local state, visitor, old = unpack(redis.call('HMGET', skey, 'state', 'visitor', 'rating'))
if not state or visitor ~= vid then return 'not_found' end
if state ~= 'closed' or (old and old ~= '') then return 'conflict' end
redis.call('HSET', skey, 'rating', rating, 'comment', comment)
return 'ok'
