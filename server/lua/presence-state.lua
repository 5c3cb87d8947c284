--[[
  Reads a presence channel's state and the id of its newest change message in one atomic step, so the
  snapshot is consistent with last_message_id: replaying later messages onto it gives the current state.
  Expired-but-not-yet-swept clients are included on purpose: their leave message is still to come.

  KEYS[1] users     HASH  userId -> "<present clients>:<profile fingerprint>"
  KEYS[2] info      HASH  ... v (the state version: changes with every change of the users list)
  KEYS[3] busMeta   HASH  id (last message_id), gid
  KEYS[4] order     ZSET  userId -> enter number (with maxUsersShown, info `ms`): only its first `ms`
                          users are listed

  ARGV[1] countOnly      "1": skip the user ids (identities never leave a count-only channel)
  ARGV[2] cachedVersion  the version of a users list the caller already holds, or ""

  Returns { count, lastMessageId (0 when none), version | nil, userId... }
    The user ids are left out when the version equals cachedVersion (the caller's copy is current), so a
    read of an unchanged channel costs three field reads whatever its size. The caller reads the
    profiles of the ids (stored once per user, in the users' own slots).
]]
local rcall = redis.call
local usersKey, infoKey, busMetaKey, orderKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local countOnly, cachedVersion = ARGV[1], ARGV[2]

local info = rcall('HMGET', infoKey, 'v', 'ms')
local version, shownLimit = info[1], info[2]
local result = {rcall('HLEN', usersKey), tonumber(rcall('HGET', busMetaKey, 'id') or '0'), version}
if countOnly ~= '1' and (version == false or version ~= cachedVersion) then
  local ids
  if shownLimit then
    -- maxUsersShown: the first users by enter order, however many are present.
    ids = rcall('ZRANGE', orderKey, '0', string.format('%d', tonumber(shownLimit) - 1))
  else
    ids = rcall('HKEYS', usersKey)
  end
  for _, userId in ipairs(ids) do result[#result + 1] = userId end
end
return result
