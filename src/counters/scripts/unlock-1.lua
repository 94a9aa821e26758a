--[[
unlock-1.lua — a rebuild lock's holder lets it go, in one step: a lock that expired and was taken
by another holder in between is left alone.

KEYS[1] L  {p:<id>}:lock  string: the holder's token

ARGV[1] token  the holder's token

Returns:
  1 RELEASED  the lock was this holder's and is gone
  0 NOT_HELD  another holder has it, or it expired
]]
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
redis.call("DEL", KEYS[1])
return 1
