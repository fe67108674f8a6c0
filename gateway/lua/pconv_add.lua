#!lua
-- pconv_add.lua: note that a participant code belongs to one more convênio, in the
-- cross-convênio index (GET /v1/participants/{p}/convenios).
--
-- The index is bucketed: a few participants share one small hash (field = participant code,
-- value = its convênio codes, comma-separated; codes never hold a comma). A set per
-- participant cost ~190 bytes of Redis each (Redis 7.0 gives every set of strings a hashtable);
-- a field in a listpack hash costs ~20.
--
-- KEYS[1] the bucket hash   ARGV[1] participant code   ARGV[2] convênio code
-- Returns JSON {ok=true, r={added=true|false}}.
--!include lib/common.lua

local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return ok({added = true})
end
for code in string.gmatch(current, '[^,]+') do
  if code == ARGV[2] then return ok({added = false}) end
end
redis.call('HSET', KEYS[1], ARGV[1], current .. ',' .. ARGV[2])
return ok({added = true})
