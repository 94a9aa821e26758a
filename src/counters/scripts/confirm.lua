--[[
confirm.lua — the ledger row of a reservation is written: it is no longer pending.

KEYS[1] Q  {p:<id>}:q  zset of pending reservations
KEYS[2] D  {p:<id>}:d  hash of their details
ARGV[1] reservation id

Returns 1 when it was pending, 0 when it was not (already confirmed, given back, or lost with Redis).
]]
local removed = redis.call("ZREM", KEYS[1], ARGV[1])
redis.call("HDEL", KEYS[2], ARGV[1])
return removed
