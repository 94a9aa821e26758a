--[[
release-3.lua — a redemption written to the ledger was released there (status RELEASED, in a
transaction that recorded the counter epoch it saw). Its slot comes back only if these counters
are the ones that counted it: same epoch. A rebuild after the release already left it out, so an
older epoch (or no counters at all) moves nothing.

KEYS[1] S  {p:<id>}:s  hash: epoch, seq, n, b
KEYS[2] C  {p:<id>}:c  hash: customer id -> redemptions
KEYS[3] K  {p:<id>}:k  hash: code id -> redemptions

ARGV[1] epoch        the counter epoch the release was committed under
ARGV[2] customer_id  whose slot comes back
ARGV[3] code_id      the code's id, "" for none

Returns:
  1 RELEASED     the counters moved
  0 OTHER_EPOCH  these counters did not count it (another epoch, or not hydrated)
]]
--- @include "take_back"
local S, C, K = KEYS[1], KEYS[2], KEYS[3]
local epoch = redis.call("HGET", S, "epoch")
if not epoch or epoch ~= ARGV[1] then return 0 end
take_back_redemption(S, C, K, ARGV[2], ARGV[3])
return 1
