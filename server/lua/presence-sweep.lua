--[[
  Sweeps one presence channel: removes every client whose expiry is <= now and publishes ONE message
  listing every user who left ({"leaving_user_ids":[..]} or {"count_delta":-n}; a user with another live
  client did not leave, so a zero delta is never published). Atomic, so two sweepers running at once
  announce each expiry exactly once: the second finds nothing left to remove.
  Re-computes the channel's next due time (its earliest remaining expiry) for the sweep index.

  KEYS[1] clients   ZSET  "<userId>:<client tag>" -> expiry (ms)
  KEYS[2] users     HASH  userId -> "<present clients>:<profile fingerprint>"
  KEYS[3] info      HASH  count_only, publish, audience, due, touched, v (the state version)
  KEYS[4] busMeta   HASH  id, gid
  KEYS[5] busLog    ZSET  message_id -> message JSON
  KEYS[6] shard channel of the bus channel
  KEYS[7] events    ZSET  the join/leave event outbox (see recordEvents)
  KEYS[8] order     ZSET  userId -> enter number (with maxUsersShown, info `ms`; see shownLeave)
  KEYS[9] profiles  HASH  userId -> user JSON of the users in order

  ARGV[1] now             ms
  ARGV[2] busChannelJson
  ARGV[3] recordEvents    "1": record member_removed / channel_vacated events with the change

  Per-store constants (written by the loader): BACKLOG_SIZE, CHANNEL_TTL_MS, BACKLOG_TTL_MS, IDS_PER_MS,
  EMPTY_CHANNEL_TTL_MS, TTL_REFRESH_MS, EVENTS_TTL_MS, EVENTS_CAP.

  Returns { expiredClients, nextDue (ms string) | nil when the channel is empty, message JSON | nil,
            oldest expiry removed (ms string) | nil, lastClient (1|0: the sweep emptied the channel),
            events recorded }
]]
local rcall = redis.call
-- @constants
local clientsKey, usersKey, infoKey = KEYS[1], KEYS[2], KEYS[3]
local busMetaKey, busLogKey, shardChannel, eventsKey = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local orderKey, profilesKey = KEYS[8], KEYS[9]
local now, busChannelJson, withEvents = ARGV[1], ARGV[2], ARGV[3]

-- @include append-message

local expired = rcall('ZRANGEBYSCORE', clientsKey, '-inf', now)
-- The earliest expiry removed: how late this sweep is (the sweep lag metric).
local oldest = false
if #expired > 0 then oldest = rcall('ZSCORE', clientsKey, expired[1]) end
-- Expired clients per user first (in first-seen order), so each user's entry is read and written once.
local gone, order = {}, {}
for _, member in ipairs(expired) do
  local userId = string.sub(member, 1, string.find(member, ':', 1, true) - 1)
  if gone[userId] == nil then
    gone[userId] = 0
    order[#order + 1] = userId
  end
  gone[userId] = gone[userId] + 1
end
local leftUserIds = {}
for _, userId in ipairs(order) do
  local clients, fingerprint = userEntry(rcall('HGET', usersKey, userId))
  if clients > gone[userId] then
    rcall('HSET', usersKey, userId, formatUserEntry(clients - gone[userId], fingerprint))
  else
    rcall('HDEL', usersKey, userId)
    leftUserIds[#leftUserIds + 1] = userId
  end
end
if #expired > 0 then rcall('ZREMRANGEBYSCORE', clientsKey, '-inf', now) end

local nextDue = rcall('ZRANGE', clientsKey, '0', '0', 'WITHSCORES')[2] or false
if nextDue then rcall('HSET', infoKey, 'due', nextDue) else rcall('HDEL', infoKey, 'due') end

local message = false
local lastClient, eventCount = 0, 0
if #expired > 0 then
  local rules = rcall('HMGET', infoKey, 'count_only', 'publish', 'audience', 'v', 'touched', 'es', 'ms')
  if #leftUserIds > 0 then
    local infoWrites = {'v', nextVersion(rules[4], now)}
    if withEvents == '1' then
      local events = {}
      for _, userId in ipairs(leftUserIds) do
        events[#events + 1] = 'r'
        events[#events + 1] = userId
      end
      if not nextDue then
        events[#events + 1] = 'v'
        events[#events + 1] = leftUserIds[#leftUserIds]
      end
      addInfoWrite(infoWrites, 'es', recordEvents(eventsKey, rules[6], now, events))
      eventCount = #events / 2
    end
    rcall('HSET', infoKey, unpack(infoWrites))
  end
  local data = false
  if #leftUserIds > 0 then
    if rules[1] == '1' then
      data = '{"count_delta":-' .. #leftUserIds .. '}'
    elseif rules[7] then
      -- maxUsersShown (the stored limit): listed users' places go to the earliest waiting ones.
      local entering, left = shownLeave(orderKey, profilesKey, tonumber(rules[7]), leftUserIds)
      data = usersChange(entering, left, -#leftUserIds)
    else
      data = '{"leaving_user_ids":[' .. table.concat(leftUserIds, ',') .. ']}'
    end
  end
  if data and rules[2] == '1' then
    message = appendMessage(busMetaKey, busLogKey, shardChannel, busChannelJson, data, rules[3] or '', now)
  end
  lastClient = settleChannel(clientsKey, usersKey, infoKey, busMetaKey, busLogKey, orderKey, profilesKey,
    rules[5], now)
end
return {#expired, nextDue, message, oldest, lastClient, eventCount}
