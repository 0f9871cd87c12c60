-- family: chat
-- A chat's own hash and its first message, once. A new chat is three steps, in this order:
-- route_create.lua (a pending routing record: found by the repair if what follows never
-- happens), this, route_enqueue.lua.
-- KEYS: a chat's (keys.SESSION)
-- ARGV: mode, sid, visitor id, topic, lang, created (the routing record's), earlier chats,
--       how the last one ended, first text ('' for none)
-- Returns: {'ok' | 'exists', preview of the first text}
local sid, vid, topic, lang, created, earlier, prev, text =
  ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
if redis.call('EXISTS', S.hash) == 1 then
  local first = redis.call('XRANGE', S.msgs, '-', '+', 'COUNT', 1)[1]
  local preview = ''
  if first then
    for i = 1, #first[2], 2 do if first[2][i] == 'text' then preview = first[2][i + 1] end end
  end
  return {'exists', string.sub(preview, 1, 280)}
end
redis.call('HSET', S.hash, 'state', 'queued', 'topic', topic, 'topic0', topic, 'lang', lang,
           'visitor', vid,
           'created', created, 'seq', 0, 'nseq', 0, 'dseq', 0, 'dnseq', 0, 'agent', '',
           'agent_name', '', 'rv', 0, 'earlier', earlier, 'prev', prev)
if text ~= '' then append_msg(sid, 'visitor', text, '', '') end
return {'ok', string.sub(text, 1, 280)}
