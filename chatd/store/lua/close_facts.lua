-- family: chat
-- A closed chat is about to be counted in the reports: marks it counted (once per chat) and,
-- in the same step, notes which disposition it is counted with, so that a disposition
-- recorded later (session_close.lua) corrects the figures exactly once, whichever comes first.
-- KEYS: a chat's (keys.SESSION)
-- ARGV: mode, sid, then the names of the fields to return
-- Returns: {} when the chat is not closed or was counted already; else the fields' values
if redis.call('HGET', S.hash, 'state') ~= 'closed' then return {} end
if redis.call('HSETNX', S.hash, 'counted_c', 1) == 0 then return {} end
local disposition = redis.call('HGET', S.hash, 'disposition')
if not disposition or disposition == '' then disposition = 'none' end
redis.call('HSET', S.hash, 'counted_disp', disposition)
local names = {}
for i = 3, #ARGV do names[#names + 1] = ARGV[i] end
return redis.call('HMGET', S.hash, unpack(names))
