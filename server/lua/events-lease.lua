--[[
  Takes or renews the lease on one shard of the event index: the process holding it is the only one
  delivering that shard's events, so each event reaches the hooks and webhooks once (a process that dies
  holding a lease stops renewing it, and another takes the shard over once it lapses, delivering again
  whatever the dead one had not acknowledged: at least once, never lost).

  KEYS[1] lease  STRING  the owner's token (PX leaseMs)

  ARGV[1] owner    this process's token
  ARGV[2] leaseMs  how long the lease lasts without renewal
  ARGV[3] release  "1": give the lease up if held (a process shutting down), "0": take or renew

  Returns 1 when the caller holds the lease after the call, 0 otherwise
]]
local rcall = redis.call
local leaseKey = KEYS[1]
local owner, leaseMs, release = ARGV[1], ARGV[2], ARGV[3]

local holder = rcall('GET', leaseKey)
if release == '1' then
  if holder == owner then rcall('DEL', leaseKey) end
  return 0
end
if holder == false then
  rcall('SET', leaseKey, owner, 'PX', leaseMs)
  return 1
end
if holder == owner then
  rcall('PEXPIRE', leaseKey, leaseMs)
  return 1
end
return 0
