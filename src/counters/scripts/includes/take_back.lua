-- take_back.lua — included by the scripts that return counters (give_back, release): the one
-- definition of "decrement, floor at zero, delete at zero".

-- Takes `by` off a hash field; a count never goes below zero, and per-customer / per-code entries
-- (delete_at_zero) are removed when they reach it, so an idle customer costs no memory.
local function decrement(key, field, by, delete_at_zero)
  local left = redis.call("HINCRBY", key, field, -by)
  if left <= 0 then
    if delete_at_zero then redis.call("HDEL", key, field) else redis.call("HSET", key, field, 0) end
  end
end

-- One redemption's slot back: the promotion's count, the customer's and the code's ("" for none).
local function take_back_redemption(S, C, K, customer, code)
  decrement(S, "n", 1, false)
  decrement(C, customer, 1, true)
  if code ~= "" then decrement(K, code, 1, true) end
end
