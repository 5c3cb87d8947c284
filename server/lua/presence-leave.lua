--[[
  Removes one client of a user from a presence channel, in one atomic step. When it was the user's last
  client, publishes {"leaving_user_ids":[userId]} (or {"count_delta":-1}) with the channel's stored publish
  rules (or the given ones, which are then stored). An unknown client is a silent no-op that touches
  nothing. The sweep index is left alone: removing a client can only make the earliest expiry later.

  KEYS[1] clients   ZSET  "<userId>:<client tag>" -> expiry (ms)
  KEYS[2] users     HASH  userId -> "<present clients>:<profile fingerprint>"
  KEYS[3] info      HASH  count_only, publish, audience, due, touched, v (the state version)
  KEYS[4] busMeta   HASH  id, gid
  KEYS[5] busLog    ZSET  message_id -> message JSON
  KEYS[6] shard channel of the bus channel
  KEYS[7] events    ZSET  the join/leave event outbox (see recordEvents)
  KEYS[8] order     ZSET  userId -> enter number (with maxUsersShown, info `ms`; see shownLeave)
  KEYS[9] profiles  HASH  userId -> user JSON of the users in order

  ARGV[1] member          "<userId>:<client tag>"
  ARGV[2] userId
  ARGV[3] now             ms
  ARGV[4] hasRules        "1": ARGV[5..7] are the rules to use and store; "0": use the stored ones
  ARGV[5] countOnly       "1" | "0"
  ARGV[6] publish         "1" | "0"
  ARGV[7] audienceJson    ',"user_ids":[..]...' or ""
  ARGV[8] busChannelJson
  ARGV[9] recordEvents    "1": record member_removed / channel_vacated events with the change

  Per-store constants (written by the loader): BACKLOG_SIZE, CHANNEL_TTL_MS, BACKLOG_TTL_MS, IDS_PER_MS,
  EMPTY_CHANNEL_TTL_MS, TTL_REFRESH_MS, EVENTS_TTL_MS, EVENTS_CAP.

  Returns { changed (1|0), message JSON | nil, removed (1|0: the client was present), lastClient (1|0: the
            channel has no client left), events recorded }
]]
local rcall = redis.call
-- @constants
local clientsKey, usersKey, infoKey = KEYS[1], KEYS[2], KEYS[3]
local busMetaKey, busLogKey, shardChannel, eventsKey = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local orderKey, profilesKey = KEYS[8], KEYS[9]
local member, userId, now = ARGV[1], ARGV[2], ARGV[3]
local hasRules, countOnly, publish, audienceJson = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local busChannelJson, withEvents = ARGV[8], ARGV[9]

-- @include append-message

if rcall('ZREM', clientsKey, member) == 0 then return {0, false, 0, 0, 0} end

local stored = rcall('HMGET', infoKey, 'count_only', 'publish', 'audience', 'v', 'touched', 'es', 'ms')
local infoWrites = {}
if hasRules == '1' then
  -- Written only when they changed (a missing field reads as false, which never equals a string).
  if stored[1] ~= countOnly or stored[2] ~= publish or stored[3] ~= audienceJson then
    addInfoWrite(infoWrites, 'count_only', countOnly, 'publish', publish, 'audience', audienceJson)
    -- The rules signature (presence-heartbeat.lua) no longer matches them: the next present rewrites it.
    rcall('HDEL', infoKey, 'rs')
  end
else
  -- No stored rules (cannot happen while the client existed, the keys share one TTL): publish nothing
  -- rather than guess an audience.
  countOnly, publish, audienceJson = stored[1] or '0', stored[2] or '0', stored[3] or ''
end

local changed = 0
local clients, fingerprint = userEntry(rcall('HGET', usersKey, userId))
if clients > 1 then
  rcall('HSET', usersKey, userId, formatUserEntry(clients - 1, fingerprint))
else
  rcall('HDEL', usersKey, userId)
  changed = 1
  addInfoWrite(infoWrites, 'v', nextVersion(stored[4], now))
end
local eventCount = 0
if changed == 1 and withEvents == '1' then
  local events = {'r', userId}
  if rcall('EXISTS', usersKey) == 0 then events[3], events[4] = 'v', userId end
  addInfoWrite(infoWrites, 'es', recordEvents(eventsKey, stored[6], now, events))
  eventCount = #events / 2
end
if #infoWrites > 0 then rcall('HSET', infoKey, unpack(infoWrites)) end

local data = false
if changed == 1 then
  if countOnly == '1' then
    data = '{"count_delta":-1}'
  elseif stored[7] then
    -- maxUsersShown (the stored limit): a listed user's place goes to the earliest waiting one.
    local entering, left = shownLeave(orderKey, profilesKey, tonumber(stored[7]), {userId})
    data = usersChange(entering, left, -1)
  else
    data = '{"leaving_user_ids":[' .. userId .. ']}'
  end
end
local message = false
if data and publish == '1' then
  message = appendMessage(busMetaKey, busLogKey, shardChannel, busChannelJson, data, audienceJson, now)
end

local lastClient = settleChannel(clientsKey, usersKey, infoKey, busMetaKey, busLogKey, orderKey, profilesKey,
  stored[5], now)
return {changed, message, 1, lastClient, eventCount}
