--[[
consume_budget-3.lua — reserves budget for one promotion on one invoice, atomically.

KEYS[1] S  {p:<id>}:s  hash: epoch, seq, n, b
KEYS[2] Q  {p:<id>}:q  zset: pending reservation id -> deadline (ms)
KEYS[3] D  {p:<id>}:d  hash: pending reservation id -> JSON {k="a", a=amount}

ARGV[1] reservation_id  the future invoice_applications id
ARGV[2] deadline        ms; the sweeper settles the reservation after that unless written
ARGV[3] max_budget      minor units, -1 for none
ARGV[4] amount          minor units wanted (> 0)
ARGV[5] behavior        "CAP" grants what is left, "STRICT" all or nothing
ARGV[6] epoch_floor     the newest counter epoch this process knows Postgres has; counters of an older one are not hydrated

Returns {outcome, epoch, granted, b}; b is the budget used after the call. Outcomes:
  0 RESERVED      `granted` was reserved (under CAP it may be less than wanted, or 0)
  1 NOT_HYDRATED  no counters, or counters older than epoch_floor: rebuild them from the ledger, then call again
]]
local S, Q, D = KEYS[1], KEYS[2], KEYS[3]
local state = redis.call("HMGET", S, "epoch", "b")
local epoch = tonumber(state[1])
if not epoch or epoch < tonumber(ARGV[6]) then return {1, 0, 0, 0} end
local b = tonumber(state[2])
local maxB = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
local granted = wanted
if maxB >= 0 then
  local left = maxB - b
  if left < 0 then left = 0 end
  if wanted > left then
    if ARGV[5] == "STRICT" then granted = 0 else granted = left end
  end
end
if granted <= 0 then return {0, epoch, 0, b} end
b = redis.call("HINCRBY", S, "b", granted)
redis.call("ZADD", Q, tonumber(ARGV[2]), ARGV[1])
redis.call("HSET", D, ARGV[1], cjson.encode({k = "a", c = "", code = "", a = string.format("%d", granted), i = ""}))
return {0, epoch, granted, b}
