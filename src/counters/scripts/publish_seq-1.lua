--[[
publish_seq-1.lua — a promotion or one of its codes changed in Postgres (terms_seq moved there
first); raise the seq here so reservations made with older terms are refused as STALE_TERMS.
Never lowers it, so publishes arriving out of order are harmless.

KEYS[1] S  {p:<id>}:s

ARGV[1] terms_seq  the new terms seq

Returns:
  1 RAISED     the seq moved up
  0 UNCHANGED  not hydrated, or already at least that
]]
local seq = redis.call("HGET", KEYS[1], "seq")
if not seq or tonumber(seq) >= tonumber(ARGV[1]) then return 0 end
redis.call("HSET", KEYS[1], "seq", ARGV[1])
return 1
