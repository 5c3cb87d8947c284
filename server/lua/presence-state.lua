--[[
  Reads a presence channel's state and the id of its newest change message in one atomic step, so the
  snapshot is consistent with last_message_id: replaying later messages onto it gives the current state.
  Expired-but-not-yet-swept clients are included on purpose: their leave message is still to come.

  KEYS[1] users     HASH  userId -> number of present clients
  KEYS[2] profiles  HASH  userId -> user JSON
  KEYS[3] info      HASH  ... v (the state version: changes with every change of the users list)
  KEYS[4] busMeta   HASH  id (last message_id), gid

  ARGV[1] countOnly      "1": skip the profiles (identities never leave a count-only channel)
  ARGV[2] cachedVersion  the version of a users list the caller already holds, or ""

  Returns { count, lastMessageId (0 when none), version | nil, userJson... }
    The users are left out when the version equals cachedVersion (the caller's copy is current), so a
    read of an unchanged channel costs three field reads whatever its size.
]]
local rcall = redis.call
local usersKey, profilesKey, infoKey, busMetaKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local countOnly, cachedVersion = ARGV[1], ARGV[2]

local version = rcall('HGET', infoKey, 'v')
local result = {rcall('HLEN', usersKey), tonumber(rcall('HGET', busMetaKey, 'id') or '0'), version}
if countOnly ~= '1' and (version == false or version ~= cachedVersion) then
  for _, userJson in ipairs(rcall('HVALS', profilesKey)) do result[#result + 1] = userJson end
end
return result
