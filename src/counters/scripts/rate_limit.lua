--[[
rate_limit.lua — token buckets of one API key, judged and moved in one atomic step (refill, check,
take), so concurrent calls can never take more tokens than a bucket holds. A bucket refills
continuously at `rate` tokens per second up to `burst`; a missing key is a full bucket, and each
key expires once it would be full again, so idle API keys cost nothing.

KEYS[1..n] B  {k:<api key id>}:rl:<bucket>  hash: t (tokens, fractional), ts (ms of the last write)
              (every key of one call shares the hash tag: one slot, runs unchanged on a cluster)

ARGV[1]  mode: "take"   — admitted only if every bucket holds at least one token; then each gives
                          up its `take` tokens (0 = only look); refused calls move nothing
               "charge" — each bucket gives up its `take` tokens, never going below zero; always
                          admitted (counts something that already happened, e.g. an unknown code)
               "give"   — each bucket gets `take` tokens back, never above `burst` (a reservation
                          that was not used: the code it was held for exists)
ARGV[2]  now (ms since epoch); "" = the Redis server's clock (TIME), the one clock every replica shares
then, for bucket i (i = 1..n), three values at ARGV[3i], ARGV[3i+1], ARGV[3i+2]:
  rate   refill, tokens per second (> 0; may be fractional, e.g. 0.5 = 30 per minute)
  burst  capacity, tokens (>= 1)
  take   tokens to remove (or, in "give" mode, to put back)

Returns {admitted, retry_ms, bucket, granted, level_1 .. level_n}: {1, 0, 0, granted, …} when
admitted, granted being the tokens taken from bucket 1 (in "take" mode never more than it held: a
caller asking for several tokens at once — a lease — gets what is there); {0, retry_ms, i, 0, …}
when refused, where retry_ms (>= 1) is how long until every refusing bucket holds a token again,
and i is the 1-based index of the bucket that needs the longest. level_i is bucket i's tokens after
the call, as a decimal string (Redis would cut a Lua number to an integer): the caller's replica
keeps them so it can go on judging from there if Redis becomes unreachable.
]]
local mode = ARGV[1]
local now
if ARGV[2] == "" then
  local time = redis.call("TIME")
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
else
  now = tonumber(ARGV[2])
end

-- %.17g keeps the fraction exact enough; a Lua number would be cut to 14 digits.
local function decimal(x) return string.format("%.17g", x) end

local levels = {}
local wait, worst = 0, 0
for i = 1, #KEYS do
  local rate = tonumber(ARGV[3 * i]) / 1000 -- tokens per ms
  local burst = tonumber(ARGV[3 * i + 1])
  local state = redis.call("HMGET", KEYS[i], "t", "ts")
  local tokens = burst
  if state[1] then
    local elapsed = now - tonumber(state[2])
    if elapsed < 0 then elapsed = 0 end -- a clock that stepped back refills nothing
    tokens = math.min(burst, tonumber(state[1]) + elapsed * rate)
  end
  levels[i] = tokens
  if mode == "take" and tokens < 1 then
    local ms = math.max(1, math.ceil((1 - tokens) / rate))
    if ms > wait then wait, worst = ms, i end
  end
end
if wait > 0 then
  local reply = {0, wait, worst, 0}
  for i = 1, #KEYS do reply[4 + i] = decimal(levels[i]) end
  return reply
end

local granted = 0
local reply = {1, 0, 0, 0}
for i = 1, #KEYS do
  local cost = tonumber(ARGV[3 * i + 2])
  if mode == "take" and cost > levels[i] then cost = math.floor(levels[i]) end -- never more than is there
  if i == 1 then granted = cost end
  local left = levels[i]
  if cost > 0 then
    local rate = tonumber(ARGV[3 * i]) / 1000
    local burst = tonumber(ARGV[3 * i + 1])
    if mode == "give" then
      left = math.min(burst, levels[i] + cost)
    else
      left = math.max(0, levels[i] - cost)
    end
    redis.call("HSET", KEYS[i], "t", decimal(left), "ts", now)
    redis.call("PEXPIRE", KEYS[i], math.ceil((burst - left) / rate) + 1000)
  end
  reply[4 + i] = decimal(left)
end
reply[4] = granted
return reply
