#!lua
-- apikey_revoke.lua: revoke an API key; it is refused from then on (gateways cache a key for
-- at most CONVENIO_APIKEY_CACHE seconds).
--
-- KEYS[1] api key hash (by digest)   KEYS[2] global event stream
-- ARGV[1] now (ms)   ARGV[2] protocol   ARGV[3] key id   ARGV[4] who (the operator)
--
-- Returns JSON {ok=true, r={id, revoked=true}} or {ok=false, code=UNKNOWN_API_KEY}.
--!include lib/common.lua

if redis.call('HGET', KEYS[1], 'id') ~= ARGV[3] then return fail('UNKNOWN_API_KEY') end

-- every check passed: write
redis.call('HSET', KEYS[1], 'revoked', 1, 'revoked_at', ARGV[1])
emit(KEYS[2], 'apikey.revoked', ARGV[2], ARGV[1], {id = ARGV[3], by = ARGV[4]})
return ok({id = ARGV[3], revoked = true})
