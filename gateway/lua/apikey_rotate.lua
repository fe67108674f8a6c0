#!lua
-- apikey_rotate.lua: replace an API key by a new one with the same permissions, name and scope;
-- the old one keeps working until ARGV[6] (the grace period the operator chose), so terminals
-- can switch without a gap. The new key inherits the old one's lineage: an Idempotency-Key sent
-- with the old key and retried with the new one replays, it is never charged twice.
--
-- 1. The old key must exist and not be revoked (UNKNOWN_API_KEY).
-- 2. Register the new key, set the old one's expiry, append apikey.rotated.
--
-- KEYS[1] old key's hash (by digest)   KEYS[2] new key's hash (by digest)
-- KEYS[3] id -> digest hash            KEYS[4] global event stream
-- ARGV[1] now (ms)   ARGV[2] protocol   ARGV[3] old key id   ARGV[4] new key id
-- ARGV[5] new key's digest   ARGV[6] the old key expires at (ms)   ARGV[7] who (the operator)
--
-- Returns JSON {ok=true, r={id, previous, permissions, store, terminal, lineage, previous_expires_at}}
-- or {ok=false, code=UNKNOWN_API_KEY}.
--!include lib/common.lua

local old = hgetall(KEYS[1])
if old.id ~= ARGV[3] or old.revoked == '1' then return fail('UNKNOWN_API_KEY') end
local lineage = old.lineage or old.id
local store, terminal = old.store or '', old.terminal or ''

-- every check passed: write
redis.call('HSET', KEYS[2], 'id', ARGV[4], 'permissions', old.permissions, 'name', old.name or '',
           'created_at', ARGV[1], 'revoked', 0, 'store', store, 'terminal', terminal, 'lineage', lineage,
           'previous', ARGV[3])
redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
local expires_at = tonumber(ARGV[6])
local current = tonumber(old.expires_at)
if current and current < expires_at then expires_at = current end  -- rotating again never extends it
redis.call('HSET', KEYS[1], 'expires_at', expires_at)
emit(KEYS[4], 'apikey.rotated', ARGV[2], ARGV[1],
     {id = ARGV[4], previous = ARGV[3], digest = ARGV[5], permissions = old.permissions, name = old.name or '',
      store = store, terminal = terminal, lineage = lineage, previous_expires_at = expires_at, by = ARGV[7]})
return ok({id = ARGV[4], previous = ARGV[3], permissions = old.permissions, store = store, terminal = terminal,
           lineage = lineage, previous_expires_at = expires_at})
