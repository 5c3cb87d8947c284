--[[
  Publishes a message on a bus channel: assigns its message_id and global_id, appends it to the backlog
  (trimmed to its cap) and SPUBLISHes it, in one atomic step.

  KEYS[1] busMeta  HASH  id (last message_id), gid (last global_id)
  KEYS[2] busLog   ZSET  message_id -> message JSON
  KEYS[3] shard channel of the bus channel

  ARGV[1] busChannelJson  the bus channel name as a JSON string
  ARGV[2] dataJson        the message data, JSON-encoded
  ARGV[3] audienceJson    ',"user_ids":[..],"group_ids":[..],"client_ids":[..]' or ""
  ARGV[4] now             ms
  ARGV[5] backlogSize
  ARGV[6] backlogTtlMs
  ARGV[7] idsPerMs

  Returns the message JSON
]]
local rcall = redis.call
local busMetaKey, busLogKey, shardChannel = KEYS[1], KEYS[2], KEYS[3]
local busChannelJson, dataJson, audienceJson, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local backlogSize, backlogTtlMs, idsPerMs = ARGV[5], ARGV[6], ARGV[7]

-- @include append-message

return appendMessage(busMetaKey, busLogKey, shardChannel, busChannelJson, dataJson, audienceJson, now,
  backlogSize, backlogTtlMs, idsPerMs)
