-- family: composed
-- steps: open_chat
-- The gendarme who holds a chat is shown it (on `assigned`): open_chat.lua, its audit entry
-- and the chat's routing record (the visitor's presence, read last before the caller shows
-- anything) in one call, where they take three. For a Redis that holds every key; a Cluster
-- runs them one by one (Store.open_held).
-- KEYS: a chat's (keys.SESSION), the audit trail, the routing records (keys: routes)
-- ARGV: mode, sid, login, role, how (the audit entry's), page (open_chat.lua), the trail's
--       length (MAXLEN ~)
-- Returns: {} as open_chat.lua (no entry written); else its reply and the routing record
--          ('' for none)
local sid, login = ARGV[2], ARGV[3]
local opened = step.open_chat(keys_part(1, 6),
                              {MODE, sid, login, '0', ARGV[6], 0, 0})
if #opened == 0 then return {} end
redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[7], '*', 'who', login, 'role', ARGV[4],
           'session', sid, 'how', ARGV[5], 'ts', NOW)
opened[4] = redis.call('HGET', KEYS[8], sid) or ''
return opened
