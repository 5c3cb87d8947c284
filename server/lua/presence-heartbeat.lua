--[[
  The ordinary heartbeat, tried first for every present on a channel that lists everyone, from any process
  (it never makes a user newly present, so it needs no write before it): moves the client's expiry and
  nothing else, in three commands and few arguments. Anything less ordinary (an enter included) answers 0
  with nothing written, and the caller runs presence-present.lua instead, which handles every case:
  the client or its user's entry is gone (the store lost them), the profile changed, the channel's rules
  changed (their signature `rs`, written by presence-present.lua, differs), the channel's TTLs are due for
  their refresh, or the sweep index needs the channel's due time again.

  KEYS[1] clients   ZSET  "<userId>:<client tag>" -> expiry (ms)
  KEYS[2] users     HASH  userId -> "<present clients>:<profile fingerprint>"
  KEYS[3] info      HASH  rs (rules signature), due, touched (see presence-present.lua)

  ARGV[1] member          "<userId>:<client tag>"
  ARGV[2] userId
  ARGV[3] expiresAt       ms
  ARGV[4] now             ms
  ARGV[5] fingerprint     the profile's fingerprint
  ARGV[6] rulesSignature  as presence-present.lua's ARGV[14]

  Per-store constants (written by the loader): OVERDUE_MS, TTL_REFRESH_MS (and the others, unused here).

  Returns 1 when the expiry moved (the heartbeat is done), 0 when the caller must run presence-present.lua.
]]
local rcall = redis.call
-- @constants
local clientsKey, usersKey, infoKey = KEYS[1], KEYS[2], KEYS[3]
local member, userId, expiresAt, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local fingerprint, rulesSignature = ARGV[5], ARGV[6]

local entry = rcall('HGET', usersKey, userId)
if not entry or string.sub(entry, -(#fingerprint + 1)) ~= ':' .. fingerprint then return 0 end
local info = rcall('HMGET', infoKey, 'rs', 'due', 'touched')
if info[1] ~= rulesSignature then return 0 end
local nowMs, expiry = tonumber(now), tonumber(expiresAt)
local due, touched = tonumber(info[2]), tonumber(info[3])
-- The due time must not get earlier (the index would need it) and must not be long overdue (a lost index
-- write, which presence-present.lua repairs); the TTLs must not be due for their refresh.
if due == nil or expiry < due or due + OVERDUE_MS < nowMs then return 0 end
if touched == nil or touched + TTL_REFRESH_MS <= nowMs then return 0 end
-- XX: only a client that is there moves; CH counts a moved expiry. 0 is also a same-millisecond repeat.
if rcall('ZADD', clientsKey, 'XX', 'CH', expiresAt, member) == 0
    and rcall('ZSCORE', clientsKey, member) == false then
  return 0
end
return 1
