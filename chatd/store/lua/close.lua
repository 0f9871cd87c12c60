-- family: composed
-- steps: session_close route_close
-- A close in one call where its steps (routing.py, Routing.close_chat) take one each: the
-- chat's hash, the routing state, the closed index. For a Redis that holds every key (one
-- server, a Sentinel's primary); a Cluster runs the steps one by one. The visitor's record is
-- left to the caller (its keys are named after the visitor, whom only the chat's hash knows),
-- as are the reports (their keys, after the hour the chat started in): their mark
-- (close_facts.lua) is not set here, since a call that fails after its writes (acks that did
-- not reach the replicas, a lost reply) is sent again, and a chat marked counted by the first
-- would never be counted.
-- KEYS: a chat's (keys.SESSION), the closed index, then the routing state (keys.ROUTING,
--       then one queue per topic)
-- ARGV: mode, sid, by, actor, reason, disposition, retention, rating, comment (as
--       session_close.lua), topics
-- Returns: {session_close.lua's reply, 1 when the routing state and the index are done}; the
--          second is left out when the close did not close (refused, or 'disposed': the
--          caller does what follows)
local chat, routing = keys_part(1, 6), keys_part(8, #KEYS - 7)
local sid = ARGV[2]
local closed = step.session_close(chat, {MODE, sid, ARGV[3], ARGV[4], ARGV[5], ARGV[6],
                                         ARGV[7], ARGV[8], ARGV[9]})
if closed[1] ~= 'ok' and closed[1] ~= 'closed' then return {closed} end
step.route_close(routing, {MODE, ARGV[10], sid})
redis.call('ZADD', KEYS[7], closed[4], sid)
return {closed, 1}
