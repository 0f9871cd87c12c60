-- The writes of a batch of scripts reached the replicas (the caller's WAIT said so): what
-- they did may now be shown. Marks messages and notes durable (readers show nothing past
-- dseq / dnseq), then publishes the events the scripts held back (lib.lua, DEFER).
-- KEYS: none
-- ARGV: P, mode (''), number of marks n, n x (sid, field, seq), then (channel, payload) pairs
-- Returns: the number of events published
local n = tonumber(ARGV[3])
for i = 4, 3 + 3 * n, 3 do
  local skey = k_session(ARGV[i])
  local field, seq = ARGV[i + 1], tonumber(ARGV[i + 2])
  -- max: a later batch's WAIT covers every earlier write (replication keeps their order)
  if redis.call('EXISTS', skey) == 1 and (tonumber(hget(skey, field)) or 0) < seq then
    redis.call('HSET', skey, field, seq)
  end
end
local published = 0
for i = 4 + 3 * n, #ARGV, 2 do
  redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
  published = published + 1
end
return published
