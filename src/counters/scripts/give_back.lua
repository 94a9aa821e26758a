--[[
give_back.lua — a reservation whose ledger row was never written (refused write, crash, or the
sweeper's tombstone) gives its counters back. Only a pending reservation can be given back, so a
confirmed one never is, and giving back twice moves nothing the second time.

KEYS[1] S  {p:<id>}:s  hash: epoch, seq, n, b
KEYS[2] C  {p:<id>}:c  hash: customer id -> redemptions
KEYS[3] K  {p:<id>}:k  hash: code id -> redemptions
KEYS[4] Q  {p:<id>}:q  zset of pending reservations
KEYS[5] D  {p:<id>}:d  hash of their details
KEYS[6] I  the idempotency marker named in the details ("" when none: pass any key of the slot)
ARGV[1] reservation id

Returns 1 when counters were given back, 0 when the reservation was not pending.
]]
local S, C, K, Q, D, I = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id = ARGV[1]
if redis.call("ZREM", Q, id) == 0 then
  redis.call("HDEL", D, id)
  return 0
end
local details = redis.call("HGET", D, id)
redis.call("HDEL", D, id)
if not details then return 0 end
local r = cjson.decode(details)
if redis.call("EXISTS", S) == 0 then return 0 end
if r.k == "r" then
  if redis.call("HINCRBY", S, "n", -1) < 0 then redis.call("HSET", S, "n", 0) end
  if redis.call("HINCRBY", C, r.c, -1) <= 0 then redis.call("HDEL", C, r.c) end
  if r.code ~= "" and redis.call("HINCRBY", K, r.code, -1) <= 0 then redis.call("HDEL", K, r.code) end
  if r.i ~= "" and r.i == I and redis.call("GET", I) == id then redis.call("DEL", I) end
else
  if redis.call("HINCRBY", S, "b", -tonumber(r.a)) < 0 then redis.call("HSET", S, "b", 0) end
end
return 1
