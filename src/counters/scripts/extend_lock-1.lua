--[[
extend_lock-1.lua — the holder of a rebuild lock keeps it while its rebuild runs: the lock's TTL is
short (a stalled or dead holder stops blocking soon after Redis answers again) and renewed only by
the token that took it.

KEYS[1] L  {p:<id>}:lock  string: the holder's token

ARGV[1] token   the holder's token
ARGV[2] ttl_ms  the new TTL

Returns:
  1 EXTENDED  the lock is still this holder's
  0 LOST      another holder has it, or it expired
]]
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
redis.call("PEXPIRE", KEYS[1], tonumber(ARGV[2]))
return 1
