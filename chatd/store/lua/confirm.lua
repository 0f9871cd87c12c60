-- family: chat
-- The writes of a chat script reached the replicas (the caller's WAIT said so): what it did
-- may now be shown. Marks its messages and notes durable (readers show nothing past dseq /
-- dnseq), then publishes the events it held back (lib.lua, DEFER).
-- KEYS: a chat's (keys.SESSION)
-- ARGV: mode (''), number of marks n, n x (field, seq), then the payloads for its channel
-- Returns: the number of events published
local n = tonumber(ARGV[2])
if redis.call('EXISTS', S.hash) == 1 then
  for i = 3, 2 + 2 * n, 2 do
    -- max: a later batch's WAIT covers every earlier write (replication keeps their order)
    local field, seq = ARGV[i], tonumber(ARGV[i + 1])
    if (tonumber(hget(S.hash, field)) or 0) < seq then redis.call('HSET', S.hash, field, seq) end
  end
end
local published = 0
for i = 3 + 2 * n, #ARGV do
  redis.call(CLUSTER and 'SPUBLISH' or 'PUBLISH', S.channel, ARGV[i])
  published = published + 1
end
return published
