--[[
give_back-6.lua — a reservation whose ledger row was never written (refused write, crash, or the
sweeper's tombstone) gives its counters back. Only a pending reservation can be given back, so a
confirmed one never is, and giving back twice moves nothing the second time.

KEYS[1] S  {p:<id>}:s  hash: epoch, seq, n, b
KEYS[2] C  {p:<id>}:c  hash: customer id -> redemptions
KEYS[3] K  {p:<id>}:k  hash: code id -> redemptions
KEYS[4] Q  {p:<id>}:q  zset of pending reservations
KEYS[5] D  {p:<id>}:d  hash of their details
KEYS[6] I  the idempotency marker named in the details ("" when none: pass any key of the slot)

ARGV[1] reservation_id  the reservation to give back

Returns:
  1 GIVEN_BACK   the counters were given back
  0 NOT_PENDING  the reservation was not pending (confirmed, given back already, or lost with Redis)
]]
--- @include "take_back"
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
  take_back_redemption(S, C, K, r.c, r.code)
  if r.i ~= "" and r.i == I then
    local marker = redis.call("GET", I)
    -- "<epoch>:<id>" (or a bare id from before markers carried their epoch)
    if marker and (marker == id or string.sub(marker, -(#id + 1)) == ":" .. id) then redis.call("DEL", I) end
  end
else
  decrement(S, "b", tonumber(r.a), false)
end
return 1
