--[[
  Counts one hit in a fixed window that opens at the first hit (so the reset time is exact for
  Retry-After), shared by every server process.

  KEYS[1] window  HASH  start (ms), count

  ARGV[1] now       ms
  ARGV[2] windowMs

  Returns { count (this hit included), start of the window (ms) }
]]
local rcall = redis.call
local windowKey = KEYS[1]
local now, windowMs = tonumber(ARGV[1]), tonumber(ARGV[2])
-- @include rate-limit

local count, start = hitWindow(windowKey, now, windowMs)
return {count, start}
