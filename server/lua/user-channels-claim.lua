--[[
  The per-user cap on channels present at once. One key per user: the channels they are in, each
  scored by when that claim lapses (a heartbeat renews it). Leaving channels in the same update frees
  their slots first, so a user at the cap can move from one channel to another.

  KEYS[1] userChannels  ZSET  channel -> until (ms)

  ARGV[1] now            ms
  ARGV[2] cap            most channels at once
  ARGV[3] until          ms: when the claims made or renewed here lapse
  ARGV[4] n              how many of the names that follow are presents; the rest are leaves
  ARGV[5..]              present names, then leave names

  Returns the present names refused (the user is already in `cap` other channels).
]]
local rcall = redis.call
local key, now, cap, untilMs, n = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local names = {unpack(ARGV, 5)}

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
