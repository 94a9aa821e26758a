--[[
apply_return-4.lua — a release or a reversal committed in the ledger gives its counters back: a
redemption's slot (RELEASE) or budget (REVERSAL). The ledger transaction recorded the move with the
counter epoch it saw (table counter_returns); it comes back only if these counters are the ones that
counted it (same epoch) — a rebuild of a newer epoch counted the ledger after the commit and
already left it out — and only once: the caller right after commit and the sweeper may both try.
Counters not yet at the move's epoch (missing, or an older epoch whose rebuild is still to be
installed) counted it as held and will be replaced by ones that count it the same way, so the move
waits for them.

KEYS[1] S  {p:<id>}:s       hash: epoch, seq, n, b
KEYS[2] C  {p:<id>}:c       hash: customer id -> redemptions
KEYS[3] K  {p:<id>}:k       hash: code id -> redemptions
KEYS[4] R  {p:<id>}:r:<id>  string: set once the return with this id was applied

ARGV[1] epoch        the counter epoch the move was committed under
ARGV[2] kind         "RELEASE" (a slot: n, the customer's, the code's) | "REVERSAL" (budget)
ARGV[3] customer_id  RELEASE: whose slot
ARGV[4] code_id      RELEASE: the code's id, "" for none
ARGV[5] amount       REVERSAL: minor units of budget
ARGV[6] applied_ttl_ms  how long R remembers the return was applied

Returns:
  1 APPLIED      the counters moved
  0 OTHER_EPOCH  these counters did not count it (a newer epoch)
  2 ALREADY      it was applied before
  3 NOT_YET      no counters of its epoch yet (missing, or older): try again once they are installed
]]
--- @include "take_back"
local S, C, K, R = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local epoch = tonumber(redis.call("HGET", S, "epoch"))
local at = tonumber(ARGV[1])
if not epoch or epoch < at then return 3 end
if epoch > at then return 0 end
if not redis.call("SET", R, "1", "NX", "PX", tonumber(ARGV[6])) then return 2 end
if ARGV[2] == "RELEASE" then
  take_back_redemption(S, C, K, ARGV[3], ARGV[4])
else
  decrement(S, "b", tonumber(ARGV[5]), false)
end
return 1
