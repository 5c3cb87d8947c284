--[[
  Publishes a message on a bus channel: assigns its message_id and global_id, appends it to the backlog
  (trimmed to its cap), refreshes the backlog's TTL and SPUBLISHes it, in one atomic step.

  KEYS[1] busMeta  HASH  id (last message_id), gid (last global_id)
  KEYS[2] busLog   ZSET  message_id -> message JSON
  KEYS[3] shard channel of the bus channel

  ARGV[1] busChannelJson  the bus channel name as a JSON string
  ARGV[2] dataJson        the message data, JSON-encoded
  ARGV[3] audienceJson    ',"user_ids":[..],"group_ids":[..],"client_ids":[..]' or ""
  ARGV[4] now             ms

  Per-store constants (written by the loader): BACKLOG_SIZE, BACKLOG_TTL_MS, IDS_PER_MS.

  Returns the message JSON
]]
local rcall = redis.call
-- @constants
local busMetaKey, busLogKey, shardChannel = KEYS[1], KEYS[2], KEYS[3]
local busChannelJson, dataJson, audienceJson, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

-- @include append-message

local message = appendMessage(busMetaKey, busLogKey, shardChannel, busChannelJson, dataJson, audienceJson, now)
touchBacklog(busMetaKey, busLogKey)
return message
