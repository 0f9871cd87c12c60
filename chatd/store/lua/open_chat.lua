-- Someone is shown a chat's whole transcript: the agent who holds it (on `assigned`, after a
-- reload, or over HTTP), or a supervisor reading any chat. The read goes to the audit trail in
-- the same call, so a transcript is never shown without its audit entry, and a refused one
-- leaves none.
-- KEYS: none
-- ARGV: P, NOW, sid, login, role, how, any ('1': a supervisor, any chat in any state),
--       page (messages and notes read here at most: a longer transcript is read on in pages,
--       so that no call holds Redis for long)
-- Returns: {} when there is no such chat or it is not theirs; else
--          {session hash (flat), first messages, first notes}
local sid, login, role, how, any, count = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local skey = k_session(sid)
local state, agent = unpack(redis.call('HMGET', skey, 'state', 'agent'))
if not state then return {} end
if any ~= '1' and (state ~= 'active' or agent ~= login) then return {} end
redis.call('XADD', k_audit(), 'MAXLEN', '~', 1000000, '*', 'who', login, 'role', role,
           'session', sid, 'how', how, 'ts', NOW)
local nseq, dnseq = unpack(redis.call('HMGET', skey, 'nseq', 'dnseq'))
return {redis.call('HGETALL', skey),
        redis.call('XRANGE', k_messages(sid), '-', '0-' .. visible_seq(skey), 'COUNT', count),
        redis.call('XRANGE', k_notes(sid), '-', '0-' .. (tonumber(dnseq or nseq) or 0),
                   'COUNT', count)}
