--[[
switch-7.lua — makes a rebuild's staged counts the live counters, all or nothing. The state hash S
is what lets reservations in; it is written here, in the same atomic step that renames the
complete staged hashes into place, so S never exists without every per-customer and per-code entry
its epoch counted — whatever flushes, restarts or hangs happened while the stage was filled. A
stage missing entries (a flush took part of it) is dropped and the caller rebuilds again.

KEYS[1] S   {p:<id>}:s            hash: epoch, seq, n, b
KEYS[2] C   {p:<id>}:c            hash: customer id -> redemptions
KEYS[3] K   {p:<id>}:k            hash: code id -> redemptions
KEYS[4] Q   {p:<id>}:q            zset of pending reservations
KEYS[5] D   {p:<id>}:d            hash of their details
KEYS[6] SC  {p:<id>}:st:<epoch>:c  the staged per-customer hash
KEYS[7] SK  {p:<id>}:st:<epoch>:k  the staged per-code hash

ARGV[1] epoch        from promotions.counter_epoch, just bumped by the rebuild
ARGV[2] terms_seq    the promotion's terms seq when the ledger was counted
ARGV[3] redemptions  n: counted redemptions in the ledger
ARGV[4] budget_used  b: budget consumed in the ledger
ARGV[5] customers    how many entries SC must hold
ARGV[6] codes        how many entries SK must hold

Returns:
  1 INSTALLED   the counters are this epoch's
  0 OUTRUN      counters of this or a newer epoch were live; the stage is dropped
  2 INCOMPLETE  the stage lacks entries (a flush took some); it is dropped: rebuild again
]]
local S, C, K, Q, D, SC, SK = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local epoch = tonumber(ARGV[1])
local current = redis.call("HGET", S, "epoch")
if current and tonumber(current) >= epoch then
  redis.call("UNLINK", SC, SK)
  return 0
end
local customers, codes = tonumber(ARGV[5]), tonumber(ARGV[6])
if redis.call("HLEN", SC) ~= customers or redis.call("HLEN", SK) ~= codes then
  redis.call("UNLINK", SC, SK)
  return 2
end
-- Counters of an older epoch (and their pending reservations, whose ledger writes the new epoch
-- fences) are replaced; UNLINK frees a large hash off the main thread.
redis.call("UNLINK", C, K, Q, D)
if customers > 0 then
  redis.call("RENAME", SC, C)
  redis.call("PERSIST", C)
end
if codes > 0 then
  redis.call("RENAME", SK, K)
  redis.call("PERSIST", K)
end
redis.call("DEL", S)
redis.call("HSET", S, "epoch", ARGV[1], "seq", ARGV[2], "n", ARGV[3], "b", ARGV[4])
return 1
