--[[
stage-1.lua — one batch of a rebuild's staged per-customer or per-code counts. The staged hash
belongs to the rebuild's epoch alone and expires on its own, so a rebuild that dies (or whose
stage a flush took) leaves nothing behind that a later switch could mistake for its own.

KEYS[1] T  {p:<id>}:st:<epoch>:c or :k   hash: customer or code id -> redemptions

ARGV[1] ttl_ms        how long the staged hash lives unless switch-7.lua makes it live
ARGV[2] entries...    the batch: field, value, field, value, ...

Returns the number of entries the staged hash holds after the batch.
]]
local T = KEYS[1]
redis.call("HSET", T, unpack(ARGV, 2))
redis.call("PEXPIRE", T, tonumber(ARGV[1]))
return redis.call("HLEN", T)
