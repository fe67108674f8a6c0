-- apikey_create.lua: register an API key by the SHA-256 digest of its secret.
-- Registering the same digest again changes nothing (so `convenio demo` can repeat).
--
-- KEYS[1] api key hash (by digest)   KEYS[2] id -> digest hash   KEYS[3] global event stream
-- ARGV[1] now (ms)   ARGV[2] protocol   ARGV[3] key id   ARGV[4] digest
-- ARGV[5] permission codes, comma separated   ARGV[6] name
--
-- Returns JSON {ok=true, r={id, permissions, created=bool}}.
--!include lib/common.lua

local existing = redis.call('HMGET', KEYS[1], 'id', 'permissions')
if existing[1] then
  return ok({id = existing[1], permissions = existing[2], created = false})
end
redis.call('HSET', KEYS[1], 'id', ARGV[3], 'permissions', ARGV[5], 'name', ARGV[6],
           'created_at', ARGV[1], 'revoked', 0)
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
emit(KEYS[3], 'apikey.created', ARGV[2], ARGV[1],
     {id = ARGV[3], digest = ARGV[4], permissions = ARGV[5], name = ARGV[6]})
return ok({id = ARGV[3], permissions = ARGV[5], created = true})
