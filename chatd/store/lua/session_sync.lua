-- family: chat
-- Tells a chat's own hash what a routing script decided (its state, who holds it), once per
-- version of the routing record, appends the system message that goes with it, and tells the
-- visitor. The routing record is the truth; this copy is what writes are checked against, so
-- until this runs the previous holder may still write (a few ms; if the process died, until
-- the repair runs: docs/operations.md, "Interrupted operations").
-- KEYS: a chat's (keys.SESSION)
-- ARGV: mode, sid, version, state, agent, agent name, assigned at, topic, note ('' |
--       'transferred' | 'agent_gone' | 'taken_over'), previous agent, a handoff's internal
--       note ('' for none), its author's login and display name, then the system message's
--       text in each language as pairs (language, text), the first pair the one used for a
--       language not listed
-- Returns: 'ok', 'old' (this version or a newer one was told already), 'closed', 'gone'
local sid, ver, state, agent, name, assigned_at, topic, note, prev_agent =
  ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local ho_note, ho_from, ho_name = ARGV[11], ARGV[12], ARGV[13]
local cur, rv, lang = unpack(redis.call('HMGET', S.hash, 'state', 'rv', 'lang'))
if not cur then return 'gone' end
if cur == 'closed' then return 'closed' end
if ver <= (tonumber(rv) or 0) then return 'old' end
redis.call('HSET', S.hash, 'state', state, 'agent', agent, 'agent_name', name, 'topic', topic,
           'assigned_at', assigned_at, 'rv', ver)
if prev_agent ~= '' then redis.call('HSET', S.hash, 'prev_agent', prev_agent) end
if state == 'active' then  -- the first answer (the reports' wait ends here)
  redis.call('HSETNX', S.hash, 'answered_at', tonumber(assigned_at) or NOW)
end
if ho_note ~= '' then  -- before the system message: whoever takes the chat reads it first
  append_note(sid, ho_from, ho_name, ho_note, '')
end
if note ~= '' then
  local text = ARGV[15]
  for i = 14, #ARGV - 1, 2 do
    if ARGV[i] == lang then text = ARGV[i + 1] end
  end
  append_msg(sid, 'system', text, '', '')
end
if state == 'active' then
  publish(S.channel, {e = 'assigned', sid = sid, agent = agent, name = name})
elseif state == 'queued' then
  publish(S.channel, {e = 'queued', sid = sid, topic = topic})
elseif state == 'offered' then
  publish(S.channel, {e = 'offered', sid = sid})
end
return 'ok'
