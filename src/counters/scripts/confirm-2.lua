--[[
confirm-2.lua — the ledger rows of these reservations exist: they are no longer pending.

KEYS[1] Q  {p:<id>}:q  zset of pending reservations
KEYS[2] D  {p:<id>}:d  hash of their details

ARGV[1] reservation_id...  one or more reservation ids (confirms are batched per promotion)

Returns how many were pending (0 for one already confirmed, given back, or lost with Redis).
]]
local removed = redis.call("ZREM", KEYS[1], unpack(ARGV))
redis.call("HDEL", KEYS[2], unpack(ARGV))
return removed
