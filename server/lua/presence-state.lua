--[[
  Reads a presence channel's state and the id of its newest change message in one atomic step, so the
  snapshot is consistent with last_message_id: replaying later messages onto it gives the current state.
  Expired-but-not-yet-swept clients are included on purpose: their leave message is still to come.

  KEYS[1] users     HASH  userId -> number of present clients
  KEYS[2] profiles  HASH  userId -> user JSON
  KEYS[3] busMeta   HASH  id (last message_id), gid

  ARGV[1] countOnly  "1": skip the profiles (identities never leave a count-only channel)

  Returns { count, lastMessageId (0 when none), userJson... }
]]
local rcall = redis.call
local usersKey, profilesKey, busMetaKey = KEYS[1], KEYS[2], KEYS[3]
local countOnly = ARGV[1]

local result = {rcall('HLEN', usersKey), tonumber(rcall('HGET', busMetaKey, 'id') or '0')}
if countOnly ~= '1' then
  for _, userJson in ipairs(rcall('HVALS', profilesKey)) do result[#result + 1] = userJson end
end
return result
