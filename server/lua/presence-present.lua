--[[
  Marks one client of a user present in a presence channel until expiresAt, in one atomic step.
  The user's first client publishes {"entering_users":[user]} (or {"count_delta":1}) to the backlog of
  /presence<channel> and its shard channel; a repeated call from the same client is a heartbeat that only
  moves the expiry. Stores the publish rules so that leave(null) and the sweep can publish alike.

  KEYS[1] clients   ZSET  "<userId>:<clientId>" -> expiry (ms)
  KEYS[2] users     HASH  userId -> number of present clients
  KEYS[3] profiles  HASH  userId -> user JSON {id, username, name, avatar_template}
  KEYS[4] info      HASH  count_only, publish, audience (the publish rules); due (sweep index score)
  KEYS[5] busMeta   HASH  id (last message_id), gid (last global_id)
  KEYS[6] busLog    ZSET  message_id -> message JSON (the backlog)
  KEYS[7] shard channel of the bus channel (SPUBLISH target; same hash tag as the keys)

  ARGV[1]  member          "<userId>:<clientId>"
  ARGV[2]  userId
  ARGV[3]  userJson        the user, already reduced to the four public fields
  ARGV[4]  expiresAt       ms
  ARGV[5]  now             ms (the caller's clock, never TIME)
  ARGV[6]  countOnly       "1" | "0"
  ARGV[7]  publish         "1" | "0" ("0": nobody may view, state changes, nothing is published)
  ARGV[8]  audienceJson    ',"user_ids":[..],"group_ids":[..]' or ""
  ARGV[9]  busChannelJson  the bus channel name as a JSON string
  ARGV[10] backlogSize
  ARGV[11] channelTtlMs
  ARGV[12] backlogTtlMs
  ARGV[13] idsPerMs        global_id multiplier
  ARGV[14] overdueMs       re-request indexing when the recorded due time is this far in the past

  Returns { changed (1|0), message JSON | nil, indexAt | nil }
    indexAt: the caller must ZADD the channel into the sweep index with this score (the channel's
    earliest expiry got earlier, e.g. it was empty); nil on the ordinary heartbeat.
]]
local rcall = redis.call
local clientsKey, usersKey, profilesKey, infoKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local busMetaKey, busLogKey, shardChannel = KEYS[5], KEYS[6], KEYS[7]
local member, userId, userJson = ARGV[1], ARGV[2], ARGV[3]
local expiresAt, now = ARGV[4], ARGV[5]
local countOnly, publish, audienceJson, busChannelJson = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local backlogSize, channelTtlMs, backlogTtlMs = ARGV[10], ARGV[11], ARGV[12]
local idsPerMs, overdueMs = ARGV[13], ARGV[14]

-- @include append-message

local isNewClient = rcall('ZADD', clientsKey, expiresAt, member) == 1
rcall('HSET', profilesKey, userId, userJson)
rcall('HSET', infoKey, 'count_only', countOnly, 'publish', publish, 'audience', audienceJson)

local changed = 0
if isNewClient and rcall('HINCRBY', usersKey, userId, 1) == 1 then changed = 1 end

-- The sweep index only learns about a channel when its earliest expiry gets earlier; heartbeats move
-- expiries later and are caught up lazily when the sweep visits the old due time.
local indexAt = false
local due = tonumber(rcall('HGET', infoKey, 'due'))
if due == nil or tonumber(expiresAt) < due then
  rcall('HSET', infoKey, 'due', expiresAt)
  indexAt = expiresAt
elseif due + tonumber(overdueMs) < tonumber(now) then
  -- Long overdue: the index write after an earlier call was lost (e.g. the process died); ask again.
  indexAt = string.format('%d', due)
end

touchChannel({clientsKey, usersKey, profilesKey, infoKey}, {busMetaKey, busLogKey}, channelTtlMs, backlogTtlMs)

local message = false
if changed == 1 and publish == '1' then
  local data
  if countOnly == '1' then data = '{"count_delta":1}' else data = '{"entering_users":[' .. userJson .. ']}' end
  message = appendMessage(busMetaKey, busLogKey, shardChannel, busChannelJson, data, audienceJson, now,
    backlogSize, backlogTtlMs, idsPerMs)
end
return {changed, message, indexAt}
