-- An agent is shown a chat's whole transcript (on `assigned`, or after a reload). Only when the
-- chat is theirs and active; the read goes to the audit trail in the same call, so a transcript
-- is never shown without its audit entry, and a refused one leaves none.
-- KEYS: none
-- ARGV: P, NOW, sid, login, role, how
-- Returns: {} when it is not the agent's active chat; else {session hash (flat), messages, notes}
local sid, login, role, how = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local skey = k_session(sid)
local state, agent = unpack(redis.call('HMGET', skey, 'state', 'agent'))
if state ~= 'active' or agent ~= login then return {} end
redis.call('XADD', k_audit(), 'MAXLEN', '~', 1000000, '*', 'who', login, 'role', role,
           'session', sid, 'how', how, 'ts', NOW)
return {redis.call('HGETALL', skey),
        redis.call('XRANGE', k_messages(sid), '-', '+', 'COUNT', 5000),
        redis.call('XRANGE', k_notes(sid), '-', '+', 'COUNT', 1000)}
