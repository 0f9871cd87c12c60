-- family: visitor
-- A visitor asks for a new chat: barred? an open chat already (that one is theirs: a retry
-- of `start` gets it back, and takes nothing of the allowance)? over the hourly allowance of
-- their token? If admitted, the new chat is theirs from now on (their open chat).
-- KEYS: a visitor's (keys: visitor, visitor_sessions, blocked, token_counter)
-- ARGV: mode, sid, chats allowed per token and hour, counter window s
-- Returns: {'ok', earlier chats, how the last one ended}, {'conflict', the open chat's sid},
--          {'blocked'}, {'rate_token'}
local sid, per_token, window = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('EXISTS', V.blocked) == 1 then return {'blocked'} end
local open, earlier, prev = unpack(redis.call('HMGET', V.hash, 'open', 'earlier', 'prev'))
if open and open ~= '' and open ~= sid then return {'conflict', open} end
local n = redis.call('INCR', V.counter)
if n == 1 then redis.call('EXPIRE', V.counter, window) end
if n > per_token then return {'rate_token'} end
redis.call('HSET', V.hash, 'open', sid)
redis.call('SADD', V.sessions, sid)
redis.call('PERSIST', V.hash)  -- kept while a chat is open (visitor_release.lua)
redis.call('PERSIST', V.sessions)
return {'ok', earlier or 0, prev or ''}
