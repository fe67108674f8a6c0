#!lua
-- apikey_create.lua: register an API key by the SHA-256 digest of its secret, unscoped or scoped
-- to one store (and optionally one terminal).
-- Registering the same digest again changes nothing (so `convenio demo` can repeat).
--
-- KEYS[1] api key hash (by digest)   KEYS[2] id -> digest hash   KEYS[3] global event stream
-- ARGV[1] now (ms)   ARGV[2] protocol   ARGV[3] key id   ARGV[4] digest
-- ARGV[5] permission codes, comma separated   ARGV[6] name   ARGV[7] store or ""
-- ARGV[8] terminal or ""   ARGV[9] who (the operator)
--
-- A key's `lineage` is its own id; a rotated key inherits its predecessor's (apikey_rotate.lua),
-- and Idempotency-Keys are scoped to the lineage.
--
-- Returns JSON {ok=true, r={id, permissions, store, terminal, lineage, created=bool}}.
--!include lib/common.lua

local existing = redis.call('HMGET', KEYS[1], 'id', 'permissions', 'store', 'terminal', 'lineage')
if existing[1] then
  return ok({id = existing[1], permissions = existing[2], store = existing[3] or '', terminal = existing[4] or '',
             lineage = existing[5] or existing[1], created = false})
end

-- every check passed: write
redis.call('HSET', KEYS[1], 'id', ARGV[3], 'permissions', ARGV[5], 'name', ARGV[6],
           'created_at', ARGV[1], 'revoked', 0, 'store', ARGV[7], 'terminal', ARGV[8], 'lineage', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
emit(KEYS[3], 'apikey.created', ARGV[2], ARGV[1],
     {id = ARGV[3], digest = ARGV[4], permissions = ARGV[5], name = ARGV[6], store = ARGV[7],
      terminal = ARGV[8], lineage = ARGV[3], by = ARGV[9]})
return ok({id = ARGV[3], permissions = ARGV[5], store = ARGV[7], terminal = ARGV[8], lineage = ARGV[3],
           created = true})
