--[[
  Shared helper (it uses the script's `rcall`), spliced in where a script says `-- @include rate-limit` (see append-message.lua).

  hitWindow: counts one hit in a fixed window that opens at the first hit (so the reset time is exact for
  Retry-After), shared by every server process. The window is a HASH: start (ms), count. Returns the
  count (this hit included) and the start of the window (ms, as text).
]]
local function hitWindow(windowKey, now, windowMs)
  local start = tonumber(rcall('HGET', windowKey, 'start'))
  if start == nil or now >= start + windowMs then
    rcall('HSET', windowKey, 'start', string.format('%d', now), 'count', 1)
    rcall('PEXPIRE', windowKey, windowMs)
    return 1, string.format('%d', now)
  end
  return rcall('HINCRBY', windowKey, 'count', 1), string.format('%d', start)
end
