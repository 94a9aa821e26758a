--[[
reserve-6.lua — the checkout decision: checks every limit of one promotion and, in "redeem" mode,
moves every counter in the same atomic step. In "check" mode (ValidateCode) it moves nothing and
gives the answer "redeem" would give.

KEYS[1] S  {p:<id>}:s     hash: epoch, seq, n (redemptions), b (budget used)
KEYS[2] C  {p:<id>}:c     hash: customer id -> redemptions
KEYS[3] K  {p:<id>}:k     hash: code id -> redemptions
KEYS[4] Q  {p:<id>}:q     zset: pending reservation id -> deadline (ms)
KEYS[5] D  {p:<id>}:d     hash: pending reservation id -> JSON {k="r", c=customer, code=code id, a=0, i=marker key}
KEYS[6] I  {p:<id>}:i:<k> string: idempotency key -> "<epoch>:<reservation id>" (only read/written when has_idempotency_key = "1")

ARGV[1]  mode                  "redeem" | "check"
ARGV[2]  reservation_id        the future redemption id ("" in check mode)
ARGV[3]  now                   ms since epoch
ARGV[4]  deadline              ms; the sweeper gives the reservation back after that unless written
ARGV[5]  terms_seq             the terms seq the caller evaluated the terms at
ARGV[6]  customer_id
ARGV[7]  code_id               "" for none (the primary code, or a redemption by promotion id)
ARGV[8]  status                the promotion's status ("ACTIVE" admits)
ARGV[9]  valid_from            ms, "" for none
ARGV[10] valid_to              ms (exclusive), "" for none
ARGV[11] code_active           "1" | "0"
ARGV[12] code_expires_at       ms, "" for none
ARGV[13] max_redemptions       -1 for none
ARGV[14] max_per_customer      -1 for none
ARGV[15] has_idempotency_key   "1" when an idempotency key is given (KEYS[6] is then meaningful)
ARGV[16] code_max_redemptions  -1 for none
ARGV[17] max_budget            -1 for none
ARGV[18] idempotency_ttl_ms    how long the idempotency marker lives
ARGV[19] budget_exhausted      "1" when a STRICT budget refused a grant it could no longer pay (the promotion reads EXHAUSTED)
ARGV[20] epoch_floor           the newest counter epoch this process knows Postgres has; counters of an older one are not hydrated

Returns {outcome, epoch, extra, n, b}: extra is the earlier reservation id for DUPLICATE, else "";
n is the redemption count after the call, b the budget used (0 when NOT_HYDRATED or STALE_TERMS is
answered before it is read; a promotion.exhausted event shows it). Outcomes (src/counters/outcomes.ts has the same names):
  0  ADMITTED                 redeem: every counter moved; check: it would be admitted
  1  NOT_HYDRATED             no counters, or counters of an epoch older than epoch_floor: rebuild them from the ledger, then call again
  2  STALE_TERMS              Redis has a newer terms seq: reload the terms, then call again
  3  DUPLICATE                the idempotency key is held by reservation `extra`
  10 PROMOTION_NOT_ACTIVE
  11 PROMOTION_NOT_STARTED
  12 PROMOTION_EXPIRED
  13 CODE_INACTIVE
  14 CODE_EXPIRED
  20 MAX_REDEMPTIONS_REACHED
  21 CUSTOMER_LIMIT_REACHED
  22 CODE_LIMIT_REACHED
  23 BUDGET_EXHAUSTED
]]
local S, C, K, Q, D, I = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local redeem = ARGV[1] == "redeem"

local state = redis.call("HMGET", S, "epoch", "seq", "n", "b")
local epoch = tonumber(state[1])
if not epoch or epoch < tonumber(ARGV[20]) then return {1, 0, "", 0, 0} end -- NOT_HYDRATED
local seq = tonumber(state[2])
local n = tonumber(state[3])
local b = tonumber(state[4]) or 0
local argSeq = tonumber(ARGV[5])
if seq > argSeq then return {2, epoch, "", n, 0} end -- STALE_TERMS

if ARGV[15] == "1" then
  -- A marker set under an older epoch is not this epoch's reservation (its write was fenced, or it
  -- is in the ledger, where the idempotency key's unique index answers); one without an epoch
  -- predates the format and is taken as this epoch's.
  local marker = redis.call("GET", I)
  if marker then
    local at, earlier = string.match(marker, "^(%d+):(.+)$")
    if not at then return {3, epoch, marker, n, b} end -- DUPLICATE
    if tonumber(at) == epoch then return {3, epoch, earlier, n, b} end -- DUPLICATE
  end
end

local now = tonumber(ARGV[3])
if ARGV[8] ~= "ACTIVE" then return {10, epoch, "", n, b} end
if ARGV[9] ~= "" and now < tonumber(ARGV[9]) then return {11, epoch, "", n, b} end
if ARGV[10] ~= "" and now >= tonumber(ARGV[10]) then return {12, epoch, "", n, b} end
local code = ARGV[7]
if code ~= "" then
  if ARGV[11] ~= "1" then return {13, epoch, "", n, b} end
  if ARGV[12] ~= "" and now >= tonumber(ARGV[12]) then return {14, epoch, "", n, b} end
end
local maxN = tonumber(ARGV[13])
if maxN >= 0 and n >= maxN then return {20, epoch, "", n, b} end
local customer = ARGV[6]
local perCustomer = tonumber(ARGV[14])
if perCustomer >= 0 then
  local used = tonumber(redis.call("HGET", C, customer) or "0")
  if used >= perCustomer then return {21, epoch, "", n, b} end
end
if code ~= "" then
  local codeMax = tonumber(ARGV[16])
  if codeMax >= 0 then
    local used = tonumber(redis.call("HGET", K, code) or "0")
    if used >= codeMax then return {22, epoch, "", n, b} end
  end
end
local maxB = tonumber(ARGV[17])
if maxB >= 0 and (b >= maxB or ARGV[19] == "1") then return {23, epoch, "", n, b} end

if not redeem then return {0, epoch, "", n, b} end

if argSeq > seq then redis.call("HSET", S, "seq", argSeq) end
local id = ARGV[2]
n = redis.call("HINCRBY", S, "n", 1)
redis.call("HINCRBY", C, customer, 1)
if code ~= "" then redis.call("HINCRBY", K, code, 1) end
redis.call("ZADD", Q, tonumber(ARGV[4]), id)
local idem = ""
if ARGV[15] == "1" then
  redis.call("SET", I, state[1] .. ":" .. id, "PX", tonumber(ARGV[18]))
  idem = I
end
redis.call("HSET", D, id, cjson.encode({k = "r", c = customer, code = code, a = 0, i = idem}))
return {0, epoch, "", n, b}
