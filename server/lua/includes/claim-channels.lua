--[[
  Shared helper (it uses the script's `rcall`), spliced in where a script says `-- @include claim-channels` (see append-message.lua).

  claimChannels: the per-user cap on channels present at once. One key per user: the channels they are
  in, each scored by when that claim lapses (a heartbeat renews it). Leaving channels in the same update
  frees their slots first, so a user at the cap can move from one channel to another.

  key     ZSET  channel -> until (ms)
  now, untilMs  ms, as text; cap: a number
  names   the present names (the first n), then the leave names

  Returns the present names refused (the user is already in `cap` other channels).
]]
local function claimChannels(key, now, cap, untilMs, names, n)
  rcall('ZREMRANGEBYSCORE', key, '-inf', now)
  for i = n + 1, #names do rcall('ZREM', key, names[i]) end
  local count = rcall('ZCARD', key)
  local refused = {}
  for i = 1, n do
    local name = names[i]
    if rcall('ZSCORE', key, name) then
      rcall('ZADD', key, 'GT', untilMs, name)
    elseif count < cap then
      rcall('ZADD', key, untilMs, name)
      count = count + 1
    else
      refused[#refused + 1] = name
    end
  end
  -- The key goes when its last claim would lapse (a relative TTL: `now` is the caller's clock, not Redis').
  if rcall('EXISTS', key) == 1 then
    rcall('PEXPIRE', key, string.format('%d', math.max(1, tonumber(untilMs) - tonumber(now))))
  end
  return refused
end
