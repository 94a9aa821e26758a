--[[
release.lua — a redemption written to the ledger was released there (status RELEASED, in a
transaction that recorded the counter epoch it saw). Its slot comes back only if these counters
are the ones that counted it: same epoch. A rebuild after the release already left it out, so an
older epoch (or no counters at all) moves nothing.

KEYS[1] S  {p:<id>}:s  hash: epoch, seq, n, b
KEYS[2] C  {p:<id>}:c  hash: customer id -> redemptions
KEYS[3] K  {p:<id>}:k  hash: code id -> redemptions
ARGV[1] epoch the release was committed under
ARGV[2] customer id
ARGV[3] code id, "" for none

Returns 1 when the counters moved, 0 otherwise.
]]
local S, C, K = KEYS[1], KEYS[2], KEYS[3]
local epoch = redis.call("HGET", S, "epoch")
if not epoch or epoch ~= ARGV[1] then return 0 end
if redis.call("HINCRBY", S, "n", -1) < 0 then redis.call("HSET", S, "n", 0) end
if redis.call("HINCRBY", C, ARGV[2], -1) <= 0 then redis.call("HDEL", C, ARGV[2]) end
if ARGV[3] ~= "" and redis.call("HINCRBY", K, ARGV[3], -1) <= 0 then redis.call("HDEL", K, ARGV[3]) end
return 1
