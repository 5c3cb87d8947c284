--[[
  Admits one `POST /presence/update` of a user in one round trip: counts it against the user's rate
  limit (includes/rate-limit.lua) and, only when it is within the limit, claims its channels against the
  user's cap (includes/claim-channels.lua) — what rate-limit-hit.lua then user-channels-claim.lua do, in
  the same order, without a second round trip. Both keys carry the user's hash tag (one slot).

  KEYS[1] window        HASH  start (ms), count — the user's update rate window
  KEYS[2] userChannels  ZSET  channel -> until (ms)

  ARGV[1] now            ms
  ARGV[2] windowMs       the window ("" = no rate limit: nothing is counted)
  ARGV[3] limit          most updates per window
  ARGV[4] cap            most channels at once ("" = no cap: nothing is claimed)
  ARGV[5] until          ms: when the claims made or renewed here lapse
  ARGV[6] n              how many of the names that follow are presents; the rest are leaves
  ARGV[7..]              present names, then leave names

  Returns { count (0 without a limit), window start ("" without a limit), refused names... }; over the
  limit nothing is claimed and no name is listed.
]]
local rcall = redis.call
local windowKey, channelsKey = KEYS[1], KEYS[2]
local now, windowMs, limit = ARGV[1], ARGV[2], ARGV[3]
local cap, untilMs, n = ARGV[4], ARGV[5], tonumber(ARGV[6])
local names = {unpack(ARGV, 7)}
-- @include rate-limit
-- @include claim-channels

local count, start = 0, ''
if windowMs ~= '' then
  count, start = hitWindow(windowKey, tonumber(now), tonumber(windowMs))
  if count > tonumber(limit) then return {count, start} end
end
local reply = {count, start}
if cap ~= '' then
  local refused = claimChannels(channelsKey, now, tonumber(cap), untilMs, names, n)
  for i = 1, #refused do reply[#reply + 1] = refused[i] end
end
return reply
