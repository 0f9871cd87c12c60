-- Creates a session, queues it, and stores the optional first message as seq 1.
-- KEYS: none (names come from k_*(); the session lives under its {sid} tag, the queue under {m})
-- ARGV: P, NOW, sid, visitor id, topic, lang, priority, weight, first text ('' for none), cid
-- Returns: seq of the first message (0 when none)
local sid, vid, topic, lang, prio, weight, text, cid =
  ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local skey = k_session(sid)
redis.call('HSET', skey, 'state', 'queued', 'topic', topic, 'lang', lang, 'prio', prio,
           'weight', weight, 'visitor', vid, 'created', NOW, 'qscore', NOW, 'seq', 0, 'nseq', 0,
           'agent', '', 'offer_agent', '', 'declined', '')
redis.call('ZADD', k_queue(topic), NOW, sid)
redis.call('ZADD', k_open(), NOW, sid)
redis.call('ZADD', k_visitors_seen(), NOW, sid)
redis.call('SADD', k_visitor_sessions(vid), sid)
if text ~= '' then
  return append_msg(sid, 'visitor', text, cid, '')
end
return 0
