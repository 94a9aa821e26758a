--[[
hydrate-1.lua — installs counters rebuilt from the ledger. Called once per rebuild, after the
per-customer (C) and per-code (K) hashes were reset and filled; the state hash S appearing is what
lets reservations in again, so it is written last. A state of the same or a newer epoch already
there wins (another rebuild finished first).

KEYS[1] S  {p:<id>}:s  hash: epoch, seq, n, b

ARGV[1] epoch        from promotions.counter_epoch, just bumped
ARGV[2] terms_seq    the promotion's terms seq when the ledger was counted
ARGV[3] redemptions  n: ACTIVE redemptions in the ledger
ARGV[4] budget_used  b: budget consumed in the ledger

Returns:
  1 INSTALLED  the state is this epoch's
  0 OUTRUN     a state of this or a newer epoch was there
]]
local current = redis.call("HGET", KEYS[1], "epoch")
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call("HSET", KEYS[1], "epoch", ARGV[1], "seq", ARGV[2], "n", ARGV[3], "b", ARGV[4])
return 1
