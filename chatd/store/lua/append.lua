-- family: chat
-- Appends a message or an internal note, once per cid and sender, after checking the sender
-- may write in this chat (its hash's copy of the holder: session_sync.lua keeps it).
-- KEYS: a chat's (keys.SESSION)
-- ARGV: mode, sid, kind ('msg'|'note'), from ('visitor'|'agent'), actor (visitor id or
--       login), text, cid, the actor's display name (a note is signed with it), attachment
--       ('' or the id of a photo this side uploaded to this chat: upload_add.lua)
-- Returns: {status, seq[, ts of a new message]} with status 'ok' (new), 'dup' (cid seen: the original seq),
--          'not_found' (no such session, or not the actor's; or no such photo of this side
--          in this chat), 'closed' (session is over)
local sid, kind, from, actor, text, cid, name, attachment =
  ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8] or '', ARGV[9] or ''
local state, visitor, agent, dseq, replied = unpack(redis.call('HMGET', S.hash, 'state',
  'visitor', 'agent', 'dseq', 'first_reply_at'))
if not state then return {'not_found', 0} end
if from == 'visitor' then
  if visitor ~= actor then return {'not_found', 0} end
elseif agent ~= actor then
  return {'not_found', 0}
end
local cidkey = cid_field(kind == 'note' and 'n' or 'm', from, actor, cid)
if cid ~= '' then
  local seen = redis.call('HGET', S.cids, cidkey)
  if seen then
    if DEFER then  -- its first ack may have failed (WAIT timed out): shown from now on
      local stream = kind == 'note' and S.notes or S.msgs
      local entry = redis.call('XRANGE', stream, '0-' .. seen, '0-' .. seen)[1]
      if entry then
        local f = {}
        for i = 1, #entry[2], 2 do f[entry[2][i]] = entry[2][i + 1] end
        if kind == 'note' then
          mark_durable('dnseq', tonumber(seen))
          publish(S.channel, {e = 'note', sid = sid, nseq = tonumber(seen), agent = f.agent,
                              name = f.name or '', text = f.text, ts = tonumber(f.ts),
                              cid = cid})
        else
          mark_durable('dseq', tonumber(seen))
          publish(S.channel, {e = 'msg', sid = sid, seq = tonumber(seen), from = f.from,
                              text = f.text, ts = tonumber(f.ts), cid = cid, a = f.a})
        end
      end
    end
    return {'dup', tonumber(seen)}
  end
end
if state == 'closed' then return {'closed', 0} end
if from == 'agent' and state ~= 'active' then return {'not_found', 0} end
if kind == 'msg' then
  local photo
  if attachment ~= '' then
    -- a photo of this chat, uploaded by this side (record: 'side|type|w|h|...')
    local rec = redis.call('HGET', S.uploads, attachment)
    if not rec or string.sub(rec, 1, 2) ~= string.sub(from, 1, 1) .. '|' then
      return {'not_found', 0}
    end
    local mtype, w, h = string.match(rec, '^%a|([^|]+)|(%d+)|(%d+)|')
    photo = attachment .. '|' .. mtype .. '|' .. w .. '|' .. h
  end
  if from == 'agent' and not replied then redis.call('HSET', S.hash, 'first_reply_at', NOW) end
  if not DEFER then  -- every message is shown once written: no dseq to keep (lib.lua, ABSENT)
    if dseq then redis.call('HDEL', S.hash, 'dseq') end
    ABSENT.dseq = true
  end
  return {'ok', append_msg(sid, from, text, cid, actor, photo), NOW}
end
local nseq = append_note(sid, actor, name, text, cid)
if cid ~= '' then redis.call('HSET', S.cids, cidkey, nseq) end
return {'ok', nseq}
