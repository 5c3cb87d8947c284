--[[
  The per-user cap on channels present at once (see includes/claim-channels.lua).

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
-- @include claim-channels

return claimChannels(key, now, cap, untilMs, names, n)
