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

local start = tonumber(rcall('HGET', windowKey, 'start'))
if start == nil or now >= start + windowMs then
  rcall('HSET', windowKey, 'start', string.format('%d', now), 'count', 1)
  rcall('PEXPIRE', windowKey, windowMs)
  return {1, string.format('%d', now)}
end
return {rcall('HINCRBY', windowKey, 'count', 1), string.format('%d', start)}
