-- An agent hands an active chat on: to a topic's queue (at the front), or as an offer to a
-- named agent who is online with room for it. The visitor keeps the whole transcript.
-- KEYS: none
-- ARGV: P, NOW, sid, login, to_agent ('' for none), to_topic ('' for none), topic priority,
--       topic weight, offer timeout ms, system text fr, system text en
-- Returns: 'ok', 'not_found' (not this agent's active chat), 'conflict' (target cannot take it)
local sid, login, to_agent, to_topic, prio, weight, offer_ms, text_fr, text_en =
  ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9]),
  ARGV[10], ARGV[11]
local skey = k_session(sid)
local state, agent, lang, topic, cur_weight = unpack(redis.call('HMGET', skey,
  'state', 'agent', 'lang', 'topic', 'weight'))
if state ~= 'active' or agent ~= login then return 'not_found' end
if to_agent ~= '' then
  if to_agent == login then return 'conflict' end
  local status, cap, load = unpack(redis.call('HMGET', k_agent(to_agent), 'status', 'cap', 'load'))
  if status ~= 'available' and status ~= 'away' then return 'conflict' end
  if (tonumber(cap) or 0) - (tonumber(load) or 0) < tonumber(cur_weight) then return 'conflict' end
  detach_agent(sid, 'transferred')
  append_msg(sid, 'system', lang == 'en' and text_en or text_fr, '', '')
  take_load(to_agent, tonumber(cur_weight))
  redis.call('SADD', k_agent_sessions(to_agent), sid)
  local deadline = NOW + offer_ms
  redis.call('HSET', skey, 'state', 'offered', 'agent', '', 'offer_agent', to_agent,
             'offer_deadline', deadline, 'offered_at', NOW)
  redis.call('ZADD', k_offers(), deadline, sid)
  publish(k_agent_channel(to_agent), {e = 'offer', sid = sid, topic = topic, lang = lang,
    waited_ms = NOW - tonumber(hget(skey, 'created')), expires_ms = offer_ms,
    preview = '', from_agent = login})
  return 'ok'
end
detach_agent(sid, 'transferred')
append_msg(sid, 'system', lang == 'en' and text_en or text_fr, '', '')
redis.call('HSET', skey, 'topic', to_topic, 'prio', prio, 'weight', weight)
requeue(sid, true)
return 'ok'
