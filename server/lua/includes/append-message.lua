--[[
  Shared helpers, spliced into a script where it says `-- @include append-message` (the loader in
  server/src/store/redis-store.ts does the splicing, so every script stays one EVALSHA).

  appendMessage: gives a bus message its ids, appends it to the channel's backlog, trims the backlog to its
  cap, refreshes the backlog TTL and SPUBLISHes it to the channel's shard channel. Returns the message JSON.

  The JSON is assembled by concatenation instead of cjson.encode: cjson prints numbers with 14 significant
  digits, which would round a 16-digit global_id, and the data and audience arrive already encoded.

  global_id = max(previous global_id of this channel + 1, now * idsPerMs): unique and strictly increasing
  per channel, ordered by time across channels, and it needs no global counter (a global key could not
  be touched from a script whose keys live in one channel's slot on a cluster).
]]
local function appendMessage(metaKey, logKey, shardChannel, busChannelJson, dataJson, audienceJson, now,
                             backlogSize, backlogTtlMs, idsPerMs)
  local messageId = rcall('HINCRBY', metaKey, 'id', 1)
  local previous = tonumber(rcall('HGET', metaKey, 'gid') or '0')
  local globalId = math.max(previous + 1, tonumber(now) * tonumber(idsPerMs))
  -- %d, not tostring: tostring uses %.14g and would round ids above 10^14.
  local globalIdText = string.format('%d', globalId)
  rcall('HSET', metaKey, 'gid', globalIdText)
  local message = '{"global_id":' .. globalIdText .. ',"message_id":' .. string.format('%d', messageId) ..
    ',"channel":' .. busChannelJson .. ',"data":' .. dataJson .. audienceJson .. '}'
  rcall('ZADD', logKey, messageId, message)
  rcall('ZREMRANGEBYRANK', logKey, 0, -(tonumber(backlogSize) + 1))
  rcall('PEXPIRE', metaKey, backlogTtlMs)
  rcall('PEXPIRE', logKey, backlogTtlMs)
  rcall('SPUBLISH', shardChannel, message)
  return message
end

--[[
  touchChannel: activity on a presence channel keeps its keys for channelTtlMs and its backlog (and so
  its message ids) for backlogTtlMs. PEXPIRE on a key that does not exist is a no-op.
]]
local function touchChannel(channelKeys, busKeys, channelTtlMs, backlogTtlMs)
  for _, key in ipairs(channelKeys) do rcall('PEXPIRE', key, channelTtlMs) end
  for _, key in ipairs(busKeys) do rcall('PEXPIRE', key, backlogTtlMs) end
end
