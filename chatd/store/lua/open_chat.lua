-- family: chat
-- Someone is to be shown a chat's transcript: the agent who holds it (on `assigned`, after a
-- reload, or over HTTP), or a supervisor reading any chat. Checked and read here, its first
-- page only; the caller writes the audit entry before it shows anything, so a transcript is
-- never shown without its entry, and a refused one leaves none.
-- KEYS: a chat's (keys.SESSION)
-- ARGV: mode, sid, login, any ('1': a supervisor, any chat in any state), page (messages and
--       notes read here at most: a longer transcript is read on in pages), after (messages
--       with a greater seq only), notes after (notes with a greater nseq only): a console
--       that follows a chat reads only what is new
-- Returns: {} when there is no such chat or it is not theirs; else
--          {chat hash (flat), first messages, first notes}
local sid, login, any, count = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local after, notes_after = tonumber(ARGV[6]) or 0, tonumber(ARGV[7]) or 0
local state, agent = unpack(redis.call('HMGET', S.hash, 'state', 'agent'))
if not state then return {} end
if any ~= '1' and (state ~= 'active' or agent ~= login) then return {} end
local nseq, dnseq = unpack(redis.call('HMGET', S.hash, 'nseq', 'dnseq'))
return {redis.call('HGETALL', S.hash),
        redis.call('XRANGE', S.msgs, '0-' .. (after + 1), '0-' .. visible_seq(), 'COUNT', count),
        redis.call('XRANGE', S.notes, '0-' .. (notes_after + 1),
                   '0-' .. (tonumber(dnseq or nseq) or 0), 'COUNT', count)}
