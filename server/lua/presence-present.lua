--[[
  Marks one client of a user present in a presence channel until expiresAt, in one atomic step.
  The user's first client publishes {"entering_users":[user]} (or {"count_delta":1}) to the backlog of
  /presence<channel> and its shard channel; a repeated call from the same client is a heartbeat that only
  moves the expiry. Stores the publish rules so that leave(null) and the sweep can publish alike.

  KEYS[1] clients   ZSET  "<userId>:<client tag>" -> expiry (ms)
  KEYS[2] users     HASH  userId -> "<present clients>:<profile fingerprint>"
  KEYS[3] info      HASH  count_only, publish, audience (the publish rules); due (sweep index score);
                          touched (when the TTLs were last refreshed); v (the state version, see nextVersion)
  KEYS[4] busMeta   HASH  id (last message_id), gid (last global_id)
  KEYS[5] busLog    ZSET  message_id -> message JSON (the backlog)
  KEYS[6] shard channel of the bus channel (SPUBLISH target; same hash tag as the keys)
  KEYS[7] events    ZSET  seq -> "<seq>|<code>|<userId>|<at>" (the join/leave event outbox, see recordEvents)
  KEYS[8] order     ZSET  userId -> enter number (only with maxUsersShown; see shownLeave)
  KEYS[9] profiles  HASH  userId -> user JSON of the users in order

  The profiles themselves are stored once per user, outside this slot (RedisStore writes them); the
  channel keeps a fingerprint of the profile it last saw, so an edited profile moves the state version.

  ARGV[1] member          "<userId>:<client tag>"
  ARGV[2] userId
  ARGV[3] userJson        the user, already reduced to the four public fields (for the change message)
  ARGV[4] expiresAt       ms
  ARGV[5] now             ms (the caller's clock, never TIME)
  ARGV[6] countOnly       "1" | "0"
  ARGV[7] publish         "1" | "0" ("0": nobody may view, state changes, nothing is published)
  ARGV[8] audienceJson    ',"user_ids":[..],"group_ids":[..]' or ""
  ARGV[9] busChannelJson  the bus channel name as a JSON string
  ARGV[10] maxUsers       most distinct users at once, or "" (no limit)
  ARGV[11] fingerprint    a short hash of userJson, without ":"
  ARGV[12] recordEvents   "1": record channel_occupied / member_added events with the change; "0": none
  ARGV[13] shownLimit     maxUsersShown, or "" (everyone listed; always "" on a count-only channel). When it
                          differs from the stored one (info `ms`), the order is rebuilt for it: emptied, and
                          `{"resync":true}` published if users were present; they join the order on their
                          next present.
  ARGV[14] rulesSignature a short hash of the publish rules and shownLimit (RedisStore computes it), kept as
                          info `rs` so that presence-heartbeat.lua can tell the rules are unchanged

  Per-store constants (written by the loader): BACKLOG_SIZE, CHANNEL_TTL_MS, BACKLOG_TTL_MS, IDS_PER_MS,
  OVERDUE_MS (re-request indexing when the recorded due time is this far in the past), TTL_REFRESH_MS,
  EVENTS_TTL_MS, EVENTS_CAP.

  Returns { changed (1|0), message JSON | nil (the last one published), indexAt | nil, full (1|0), newClient (1|0),
            firstClient (1|0), events recorded }
    indexAt: the caller must ZADD the channel into the sweep index with this score (the channel's
    earliest expiry got earlier, e.g. it was empty); nil on the ordinary heartbeat.
    full: 1 when a user who is not present yet was refused because the channel already holds maxUsers
    users (HLEN of users, expired-but-unswept clients included); nothing was written.
    newClient: this client was not present (the deployment's client counter moves by one);
    firstClient: it is the channel's only client now (the channel counter moves by one).
]]
local rcall = redis.call
-- @constants
local clientsKey, usersKey, infoKey = KEYS[1], KEYS[2], KEYS[3]
local busMetaKey, busLogKey, shardChannel, eventsKey = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local orderKey, profilesKey = KEYS[8], KEYS[9]
local member, userId, userJson = ARGV[1], ARGV[2], ARGV[3]
local expiresAt, now = ARGV[4], ARGV[5]
local countOnly, publish, audienceJson, busChannelJson = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local maxUsers, fingerprint, withEvents, shownLimit = ARGV[10], ARGV[11], ARGV[12], ARGV[13]
local rulesSignature = ARGV[14]

-- @include append-message

local entry = rcall('HGET', usersKey, userId)
-- Full: checked before any write, in the same script as the write, so racing processes cannot exceed it.
-- A present member (another tab, a heartbeat) is never refused.
if maxUsers ~= '' and entry == false and rcall('HLEN', usersKey) >= tonumber(maxUsers) then
  return {0, false, false, 1, 0, 0, 0}
end

local isNewClient = rcall('ZADD', clientsKey, expiresAt, member) == 1
local firstClient = isNewClient and rcall('ZCARD', clientsKey) == 1
local clients, seen = userEntry(entry)
-- A user without an entry is new here (or their entry was lost while a client stayed: announce again).
if isNewClient or clients == 0 then clients = clients + 1 end
-- A heartbeat nearly always carries the profile already seen: compare rather than rewrite (a write
-- dirties the key and is replicated).
local profileChanged = seen ~= fingerprint
if isNewClient or profileChanged then
  rcall('HSET', usersKey, userId, formatUserEntry(clients, fingerprint))
end

-- One read of the info hash; its writes are collected into one HSET at the end. A missing field reads as
-- false, which never equals a string, so rules are (re)written when new or changed.
local info = rcall('HMGET', infoKey, 'count_only', 'publish', 'audience', 'due', 'touched', 'v', 'es', 'ms', 'os', 'rs')
local infoWrites = {}
if info[1] ~= countOnly or info[2] ~= publish or info[3] ~= audienceJson then
  addInfoWrite(infoWrites, 'count_only', countOnly, 'publish', publish, 'audience', audienceJson)
end
if info[10] ~= rulesSignature then addInfoWrite(infoWrites, 'rs', rulesSignature) end

local changed = 0
if entry == false then changed = 1 end

-- maxUsersShown: the limit changed (set, changed or removed), so the order is rebuilt for the new one.
local resync = false
local listedChanged = false
if (info[8] or '') ~= shownLimit then
  rcall('DEL', orderKey, profilesKey)
  if shownLimit == '' then rcall('HDEL', infoKey, 'ms', 'os') else addInfoWrite(infoWrites, 'ms', shownLimit, 'os', '0') end
  info[9] = '0'
  -- Users other than this call's new one were present: viewers hold a list built for the old limit.
  resync = rcall('HLEN', usersKey) > changed
  listedChanged = true
end
local data = false
if countOnly == '1' then
  if changed == 1 then data = '{"count_delta":1}' end
elseif shownLimit ~= '' then
  if changed == 1 or rcall('ZSCORE', orderKey, userId) == false then
    -- A new user, or one present since before the limit changed: they join the enter order now.
    local number = string.format('%d', (tonumber(info[9]) or 0) + 1)
    addInfoWrite(infoWrites, 'os', number)
    rcall('ZADD', orderKey, number, userId)
    rcall('HSET', profilesKey, userId, userJson)
    local size = rcall('ZCARD', orderKey)
    if size == 1 then
      -- Created by this call: they get their TTL now, not at the channel's next refresh.
      rcall('PEXPIRE', orderKey, CHANNEL_TTL_TEXT)
      rcall('PEXPIRE', profilesKey, CHANNEL_TTL_TEXT)
    end
    local listed = size <= tonumber(shownLimit)
    if listed then
      listedChanged = true
      data = usersChange({userJson}, {}, changed)
    else
      data = usersChange({}, {}, changed)
    end
  elseif profileChanged then
    rcall('HSET', profilesKey, userId, userJson)
  end
elseif changed == 1 then
  data = '{"entering_users":[' .. userJson .. ']}'
end

-- A state read can see this call: the users list (and so a cached copy of it) changed.
if changed == 1 or profileChanged or listedChanged then
  addInfoWrite(infoWrites, 'v', nextVersion(info[6], now))
end

local eventCount = 0
if changed == 1 and withEvents == '1' then
  local events = {}
  if rcall('HLEN', usersKey) == 1 then events = {'o', userId} end
  events[#events + 1] = 'a'
  events[#events + 1] = userId
  addInfoWrite(infoWrites, 'es', recordEvents(eventsKey, info[7], now, events))
  eventCount = #events / 2
end

-- The sweep index only learns about a channel when its earliest expiry gets earlier; heartbeats move
-- expiries later and are caught up lazily when the sweep visits the old due time.
local indexAt = false
local due = tonumber(info[4])
if due == nil or tonumber(expiresAt) < due then
  addInfoWrite(infoWrites, 'due', expiresAt)
  indexAt = expiresAt
elseif due + OVERDUE_MS < tonumber(now) then
  -- Long overdue: the index write after an earlier call was lost (e.g. the process died); ask again.
  indexAt = string.format('%d', due)
end

local message = false
if resync and publish == '1' then
  message = appendMessage(busMetaKey, busLogKey, shardChannel, busChannelJson, '{"resync":true}', audienceJson, now)
end
if data and publish == '1' then
  message = appendMessage(busMetaKey, busLogKey, shardChannel, busChannelJson, data, audienceJson, now)
end

-- TTLs are refreshed when this call may have created the channel's keys (its first client: the keys of
-- an emptied channel are gone), or when the last refresh is TTL_REFRESH_MS old. An ordinary heartbeat
-- then costs three commands instead of nine; every key still lives at least its TTL minus
-- TTL_REFRESH_MS after the last activity.
local touched = tonumber(info[5])
if firstClient or touched == nil
    or touched + TTL_REFRESH_MS <= tonumber(now) then
  addInfoWrite(infoWrites, 'touched', now)
  rcall('HSET', infoKey, unpack(infoWrites))
  touchChannel(clientsKey, usersKey, infoKey, busMetaKey, busLogKey, orderKey, profilesKey)
elseif #infoWrites > 0 then
  rcall('HSET', infoKey, unpack(infoWrites))
end
return {changed, message, indexAt, 0, isNewClient and 1 or 0, firstClient and 1 or 0, eventCount}
