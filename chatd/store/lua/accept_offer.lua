-- family: composed
-- steps: accept session_sync
-- An offer accepted in one call where its steps (routing.py, Routing.accept) take one each:
-- the routing state, then the chat's hash told it is the gendarme's. For a Redis that holds
-- every key; a Cluster runs the steps one by one. The events (`assigned`, to the gendarme)
-- are left to the caller, as accept.lua leaves them.
-- KEYS: a chat's (keys.SESSION), then the routing state (keys.ROUTING, then one queue per
--       topic)
-- ARGV: mode, sid, login, display name, topics
-- Returns: accept.lua's reply
local chat, routing = keys_part(1, 6), keys_part(7, #KEYS - 6)
local sid = ARGV[2]
local result = step.accept(routing, {MODE, ARGV[5], sid, ARGV[3], ARGV[4]})
-- its chat's hash told here (an acceptance carries no system message); any other is left
local syncs = SYNCS
SYNCS = {}
for _, s in ipairs(syncs) do
  if s[1] == sid and s[8] == '' then
    step.session_sync(chat, {MODE, unpack(s)})
  else
    SYNCS[#SYNCS + 1] = s
  end
end
return result
