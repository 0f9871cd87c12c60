-- family: visitor
-- The visitor's open chat ended (closed: ``summary`` says how, for the next gendarme), or its
-- creation was abandoned (``summary`` ''): it is no longer their open chat. Told again for
-- the same chat (a close finished twice, a disposition recorded later), the summary is updated. A closed one
-- stays in their list until ``keep`` ms (the longest retention) after their last chat.
-- KEYS: a visitor's (keys: visitor, visitor_sessions, blocked, token_counter)
-- ARGV: mode, sid, summary ('' to undo a claim), keep ms
-- Returns: 'ok'
local sid, summary, keep = ARGV[2], ARGV[3], tonumber(ARGV[4])
if redis.call('HGET', V.hash, 'open') == sid then redis.call('HSET', V.hash, 'open', '') end
if summary == '' then
  redis.call('SREM', V.sessions, sid)
  return 'ok'
end
if redis.call('SISMEMBER', V.sessions, sid) == 1 then
  if redis.call('HGET', V.hash, 'last') ~= sid then
    redis.call('HINCRBY', V.hash, 'earlier', 1)
    redis.call('HSET', V.hash, 'prev', summary, 'last', sid)
  else  -- the same chat again: a disposition recorded after the citizen left is learnt
    redis.call('HSET', V.hash, 'prev', summary)
  end
end
redis.call('PEXPIRE', V.hash, keep)
redis.call('PEXPIRE', V.sessions, keep)
return 'ok'
