-- family: routing
-- One process says which chats it now holds a visitor connection to (its first one opened:
-- hello, resume, a new tab) and which it no longer does (its last one closed). The visitor is
-- connected while any process holds them; the last holder letting go makes them gone, now.
-- A chat not yet routed (its start is under way) is skipped: route_enqueue.lua counts its
-- creator as a holder.
-- KEYS: the routing state (keys.ROUTING), then one queue per topic
-- ARGV: mode, topics, process id, then pairs: sid, '1' (held) | '0' (let go)
-- Returns: how many queued chats have their visitor back (matching may offer them again)
local proc, back = ARGV[3], 0
for i = 4, #ARGV - 1, 2 do
  local sid, held = ARGV[i], ARGV[i + 1] == '1'
  local route = get_route(sid)
  if route then
    local vp = route.vp or {}
    route.vp = vp
    if held then
      vp[proc] = 1
      redis.call('ZADD', R.visitors_seen, 'XX', NOW, sid)
      if route.vst == 'c' then
        redis.call('ZADD', R.present, NOW, sid)
      elseif route.vst == nil then  -- a record from before presence was kept
        route.vst, route.vsince = 'c', tonumber(route.created)
        redis.call('ZADD', R.present, NOW, sid)
      else
        set_presence(sid, route, 'c', NOW)
        if route.st == 'queued' then back = back + 1 end
      end
    else
      vp[proc] = nil
      if next(vp) == nil and route.vst ~= 'g' then set_presence(sid, route, 'g', NOW) end
    end
    put_presence(sid, route)
  end
end
return back
