-- family: composed
-- steps: admit count visitor_release route_create session_create route_enqueue session_sync tally
-- A new chat in one call, where its steps (routing.py, Routing.create_session) take one each:
-- admission, the address's hourly count, the routing record, the chat's hash, the queue, the
-- hash told it is queued, the reports' count. For a Redis that holds every key (one server, a
-- Sentinel's primary); a Cluster runs the steps one by one.
-- KEYS: a chat's (keys.SESSION), a visitor's (4: visitor_release.lua), the address's
--       counter, the reports' of the hour the chat is expected to start in (5: tally.lua),
--       then the routing state (keys.ROUTING, then one queue per topic)
-- ARGV: mode, sid, visitor id, topics, topic, lang, priority, weight, first text ('' for
--       none), process id, chats allowed per token and hour, per address and hour, counter
--       window s, the longest retention ms, the hour (epoch hours) the reports' keys are of,
--       how long they are kept s
-- Returns: {'ok', queue position, created, 1 if counted in the reports (0: the chat started
--          in another hour than the keys', or was counted already: the caller counts it)},
--          or admit.lua's refusal ({'conflict', sid}, {'blocked'}, {'rate_token'}), or
--          {'rate_ip'}
local chat, visitor, counter = keys_part(1, 6), keys_part(7, 4), keys_part(11, 1)
local figures, routing = keys_part(12, 5), keys_part(17, #KEYS - 16)
local sid, vid, topics, topic, lang = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local verdict = step.admit(visitor, {MODE, sid, ARGV[11], ARGV[13]})
if verdict[1] ~= 'ok' then return verdict end
if step.count(counter, {MODE, ARGV[13]}) > tonumber(ARGV[12]) then
  step.visitor_release(visitor, {MODE, sid, '', ARGV[14]})
  return {'rate_ip'}
end
local created = step.route_create(routing, {MODE, topics, sid, vid, topic, lang, ARGV[7],
                                            ARGV[8]})[2]
local preview = step.session_create(chat, {MODE, sid, vid, topic, lang, created, verdict[2],
                                           verdict[3], ARGV[9]})[2]
local position = step.route_enqueue(routing, {MODE, topics, sid, preview, ARGV[10]})
-- what the queue's step leaves to tell the chat's hash (a new chat: no system message)
local syncs = SYNCS
SYNCS = {}
for _, s in ipairs(syncs) do step.session_sync(chat, {MODE, unpack(s)}) end
local counted = 0
if math.floor(tonumber(created) / 3600000) == tonumber(ARGV[15])
    and redis.call('HSETNX', S.hash, 'counted_q', 1) == 1 then
  step.tally(figures, {MODE, topic, lang, ARGV[16], 'req', 1})
  counted = 1
end
return {'ok', position, created, counted}
