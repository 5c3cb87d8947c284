--[[
  Shared helpers, spliced into a script where it says `-- @include append-message` (the loader in
  server/src/store/scripts.ts does the splicing, so every script stays one EVALSHA). They use the
  per-store constants the loader writes at `-- @constants` (BACKLOG_SIZE, CHANNEL_TTL_MS, BACKLOG_TTL_MS,
  IDS_PER_MS, OVERDUE_MS, EMPTY_CHANNEL_TTL_MS, TTL_REFRESH_MS, EVENTS_TTL_MS, EVENTS_CAP).

  appendMessage: gives a bus message its ids, appends it to the channel's backlog, trims the backlog to its
  cap and SPUBLISHes it to the channel's shard channel. Returns the message JSON. It refreshes the
  backlog's TTL only when it created the backlog; callers refresh it after their writes (touchBacklog /
  touchChannel) as their own rules say.

  The JSON is assembled by concatenation instead of cjson.encode: cjson prints numbers with 14 significant
  digits, which would round a 16-digit global_id, and the data and audience arrive already encoded.

  global_id = max(previous global_id of this channel + 1, now * IDS_PER_MS): unique and strictly increasing
  per channel, ordered by time across channels, and it needs no global counter (a global key could not
  be touched from a script whose keys live in one channel's slot on a cluster).

  message_id: consecutive per channel from base + 1, where base = now * IDS_PER_MS when the backlog is
  created (kept in the meta hash as `b`). A backlog created again after Redis lost it starts above every
  id the lost one reached, so a client polling from an old id sees a gap and resyncs (firstMessageIdBase
  in core/bus-messages.ts; docs/protocol.md, "Message ids").
]]
--[[
  nextVersion: the next value of a presence channel's state version (info field `v`), which changes with
  every change a state read can see (a user entering or leaving, a stored profile changing), so that a
  process may keep a read's users list and reuse it while the version is unchanged. Like message ids, a
  version that is missing (new channel, or its info hash expired or was lost) starts at now * IDS_PER_MS,
  above any value the lost one reached, so a version never names two different lists.

  addInfoWrite: appends field/value pairs to a list that the script writes with one HSET.
]]
local function nextVersion(current, now)
  local v = tonumber(current)
  if v == nil then v = math.floor(tonumber(now)) * IDS_PER_MS end
  return string.format('%d', v + 1)
end

local function addInfoWrite(writes, ...)
  for _, value in ipairs({...}) do writes[#writes + 1] = value end
end

--[[
  userEntry: a users hash value "<present clients>:<profile fingerprint>" as (clients, fingerprint);
  (0, false) for a missing one, and (clients, false) for a value written before fingerprints ("<n>").
  formatUserEntry builds one.
]]
local function userEntry(entry)
  if not entry then return 0, false end
  local sep = string.find(entry, ':', 1, true)
  if sep == nil then return tonumber(entry) or 0, false end
  return tonumber(string.sub(entry, 1, sep - 1)) or 0, string.sub(entry, sep + 1)
end

local function formatUserEntry(clients, fingerprint)
  return string.format('%d', clients) .. ':' .. fingerprint
end

-- Arguments of redis.call are passed as strings: Redis formats a Lua number argument with
-- snprintf("%.17g") on every call, which costs about as much as a cheap command. The constants line
-- (server/src/store/scripts.ts) therefore also writes CHANNEL_TTL_TEXT, BACKLOG_TTL_TEXT,
-- BACKLOG_TRIM_STOP, EMPTY_CHANNEL_TTL_TEXT, EVENTS_TTL_TEXT and EVENTS_TRIM_STOP as string literals,
-- rather than each call formatting them again.

local function touchBacklog(metaKey, logKey)
  rcall('PEXPIRE', metaKey, BACKLOG_TTL_TEXT)
  rcall('PEXPIRE', logKey, BACKLOG_TTL_TEXT)
end

local function appendMessage(metaKey, logKey, shardChannel, busChannelJson, dataJson, audienceJson, now)
  -- One read and one write for the ids (instead of HINCRBY + HGET + HSET).
  local meta = rcall('HMGET', metaKey, 'id', 'gid', 'b')
  local base = tonumber(meta[3])
  local messageId
  local globalId = math.max((tonumber(meta[2]) or 0) + 1, tonumber(now) * IDS_PER_MS)
  -- %d, not tostring: tostring uses %.14g and would round ids above 10^14.
  local globalIdText = string.format('%d', globalId)
  local messageIdText
  local created = false
  if base == nil then
    -- A new backlog (or one the store lost): ids start above any the lost one reached.
    base = math.max(0, math.floor(tonumber(now))) * IDS_PER_MS
    messageId = base + 1
    messageIdText = string.format('%d', messageId)
    rcall('HSET', metaKey, 'id', messageIdText, 'gid', globalIdText, 'b', string.format('%d', base))
    created = true
  else
    messageId = (tonumber(meta[1]) or base) + 1
    messageIdText = string.format('%d', messageId)
    rcall('HSET', metaKey, 'id', messageIdText, 'gid', globalIdText)
  end
  local message = '{"global_id":' .. globalIdText .. ',"message_id":' .. messageIdText ..
    ',"channel":' .. busChannelJson .. ',"data":' .. dataJson .. audienceJson .. '}'
  rcall('ZADD', logKey, messageIdText, message)
  -- The log holds at most one entry per id so far: it can only exceed its cap once the id does.
  if messageId - base > BACKLOG_SIZE then rcall('ZREMRANGEBYRANK', logKey, '0', BACKLOG_TRIM_STOP) end
  rcall('SPUBLISH', shardChannel, message)
  -- A backlog this call created gets its TTL at once: a caller may skip its own refresh (a present
  -- whose channel's TTLs are fresh).
  if created then touchBacklog(metaKey, logKey) end
  return message
end

--[[
  touchBacklog: activity on a bus channel keeps its backlog (and so its message ids) for BACKLOG_TTL_MS.
  touchChannel: activity on a presence channel keeps its keys for CHANNEL_TTL_MS and its backlog for
  BACKLOG_TTL_MS. Both run after the script's writes, so keys it created get their TTL; PEXPIRE on a key
  that does not exist is a no-op.
]]
local function touchChannel(clientsKey, usersKey, infoKey, metaKey, logKey, orderKey, profilesKey)
  rcall('PEXPIRE', clientsKey, CHANNEL_TTL_TEXT)
  rcall('PEXPIRE', usersKey, CHANNEL_TTL_TEXT)
  rcall('PEXPIRE', infoKey, CHANNEL_TTL_TEXT)
  -- The listed-users keys of a channel with maxUsersShown (absent otherwise: a no-op).
  rcall('PEXPIRE', orderKey, CHANNEL_TTL_TEXT)
  rcall('PEXPIRE', profilesKey, CHANNEL_TTL_TEXT)
  touchBacklog(metaKey, logKey)
end

--[[
  settleChannel: after a leave or a sweep. A channel that still has clients gets its TTLs refreshed when
  the last refresh (`touched`, the info field, as read by the caller) is TTL_REFRESH_MS old, as a
  heartbeat does; one nobody is in any more (its clients, users and profiles are gone: Redis drops empty
  hashes and sets) keeps its rules and backlog only EMPTY_CHANNEL_TTL_MS, not the long TTLs, so made-up or
  abandoned channels cost minutes of storage, not days. A later present restores the long TTLs.
  Returns 1 when the channel has no client left, else 0.
]]
local function settleChannel(clientsKey, usersKey, infoKey, metaKey, logKey, orderKey, profilesKey, touched, now)
  if rcall('EXISTS', clientsKey) == 1 then
    local last = tonumber(touched)
    if last == nil or last + TTL_REFRESH_MS <= tonumber(now) then
      rcall('HSET', infoKey, 'touched', now)
      touchChannel(clientsKey, usersKey, infoKey, metaKey, logKey, orderKey, profilesKey)
    end
    return 0
  end
  rcall('PEXPIRE', infoKey, EMPTY_CHANNEL_TTL_TEXT)
  rcall('PEXPIRE', metaKey, EMPTY_CHANNEL_TTL_TEXT)
  rcall('PEXPIRE', logKey, EMPTY_CHANNEL_TTL_TEXT)
  return 1
end

--[[
  recordEvents: appends join/leave events to a presence channel's event outbox (KEYS events, a ZSET in the
  channel's slot), in the same script as the state change that causes them, so an event exists exactly
  when its change does: a crash can delay its delivery, never lose it. `events` is a flat list of
  code, userId pairs (codes: o channel_occupied, a member_added, r member_removed, v channel_vacated), in
  the order they happened. Each event gets the next number of the channel's event sequence (info field
  `es`, starting at now * IDS_PER_MS when missing, like message ids, so a lost sequence never reuses a
  number) and is stored as "<seq>|<code>|<userId>|<at>" under score <seq>. The outbox keeps at most
  EVENTS_CAP events (the oldest go first: nobody consumed them for that long) and lives EVENTS_TTL_MS after
  its last event. Returns the new sequence value, for the caller's info write.
]]
local function recordEvents(eventsKey, currentSeq, now, events)
  local seq = tonumber(currentSeq)
  if seq == nil then seq = math.floor(tonumber(now)) * IDS_PER_MS end
  local args = {}
  for i = 1, #events, 2 do
    seq = seq + 1
    local seqText = string.format('%d', seq)
    args[#args + 1] = seqText
    args[#args + 1] = seqText .. '|' .. events[i] .. '|' .. events[i + 1] .. '|' .. now
    -- unpack() has a stack limit: a sweep may remove thousands of users at once.
    if #args >= 1000 then
      rcall('ZADD', eventsKey, unpack(args))
      args = {}
    end
  end
  if #args > 0 then rcall('ZADD', eventsKey, unpack(args)) end
  if rcall('ZCARD', eventsKey) > EVENTS_CAP then rcall('ZREMRANGEBYRANK', eventsKey, '0', EVENTS_TRIM_STOP) end
  rcall('PEXPIRE', eventsKey, EVENTS_TTL_TEXT)
  return string.format('%d', seq)
end

--[[
  usersChange: the data of a users channel's change message (core/shown-users.ts usersChange is the same
  rule): entering_users (user JSON strings), leaving_user_ids, count_delta, in this key order, each only
  when it says something; count_delta only when the count moves by something other than entering −
  leaving. Returns false when nothing changed.
]]
local function usersChange(entering, leaving, countDelta)
  local parts = {}
  if #entering > 0 then parts[#parts + 1] = '"entering_users":[' .. table.concat(entering, ',') .. ']' end
  if #leaving > 0 then parts[#parts + 1] = '"leaving_user_ids":[' .. table.concat(leaving, ',') .. ']' end
  if countDelta ~= #entering - #leaving then
    parts[#parts + 1] = '"count_delta":' .. string.format('%d', countDelta)
  end
  if #parts == 0 then return false end
  return '{' .. table.concat(parts, ',') .. '}'
end

--[[
  Channels with maxUsersShown K (info field `ms`) list the first K users by enter order: KEYS order is a
  ZSET userId -> enter number (info field `os`, the last number given), KEYS profiles a HASH userId -> user
  JSON for the users in it (so a user listed in a leaver's place can be announced from this slot).
  core/shown-users.ts ShownUsers is the same rule for the memory store.

  shownLeave: removes users who left (their users-hash entries already gone) from the order; returns the
  JSON strings of the users listed in their places and the ids of those of them who were listed.
]]
local function shownLeave(orderKey, profilesKey, limit, userIds)
  local left, ranks = {}, {}
  for i, userId in ipairs(userIds) do ranks[i] = rcall('ZRANK', orderKey, userId) end
  local removed = {}
  for i, userId in ipairs(userIds) do
    if ranks[i] then
      if ranks[i] < limit then left[#left + 1] = userId end
      removed[#removed + 1] = userId
    end
    if #removed >= 1000 then
      rcall('ZREM', orderKey, unpack(removed))
      rcall('HDEL', profilesKey, unpack(removed))
      removed = {}
    end
  end
  if #removed > 0 then
    rcall('ZREM', orderKey, unpack(removed))
    rcall('HDEL', profilesKey, unpack(removed))
  end
  local entering = {}
  if #left > 0 then
    local promoted = rcall('ZRANGE', orderKey, string.format('%d', limit - #left), string.format('%d', limit - 1))
    if #promoted > 0 then entering = rcall('HMGET', profilesKey, unpack(promoted)) end
  end
  return entering, left
end
