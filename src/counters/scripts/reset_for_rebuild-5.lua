--[[
reset_for_rebuild-5.lua — clears what is left of a promotion's per-customer and per-code counters
before a rebuild refills them, but only while the state hash is missing (never under live counters).

KEYS[1] S  {p:<id>}:s
KEYS[2] C  {p:<id>}:c
KEYS[3] K  {p:<id>}:k
KEYS[4] Q  {p:<id>}:q
KEYS[5] D  {p:<id>}:d

Returns:
  1 RESET  the leftovers are gone: fill C and K, then install S
  0 LIVE   S exists (nothing to rebuild)
]]
if redis.call("EXISTS", KEYS[1]) == 1 then return 0 end
redis.call("DEL", KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return 1
