--[[
  Re-scores a channel in one shard of the sweep index after the sweeper visited it, but only if nobody
  re-scored it meanwhile (compare-and-set on the score the sweeper read). A present that made the channel
  due earlier while the sweep ran wrote its own score, which must win over the sweeper's.

  KEYS[1] shard  ZSET  presence channel name -> due time (ms)

  ARGV[1] channel
  ARGV[2] visitedScore  the score the sweeper read
  ARGV[3] nextDue       the new score, or "" to remove the channel (it has no clients left)

  Returns 1 when the entry was re-scored or removed, 0 when it had changed meanwhile
]]
local rcall = redis.call
local shardKey = KEYS[1]
local channel, visitedScore, nextDue = ARGV[1], ARGV[2], ARGV[3]

local score = rcall('ZSCORE', shardKey, channel)
if not score or tonumber(score) ~= tonumber(visitedScore) then return 0 end
if nextDue == '' then
  rcall('ZREM', shardKey, channel)
else
  rcall('ZADD', shardKey, nextDue, channel)
end
return 1
