#!lua
-- integration_set.lua: set the integration key (the retailer's "palavra chave" the password
-- check must carry), stored only as an HMAC keyed with the server's pepper.
--
-- KEYS[1] integration hash   KEYS[2] global event stream
-- ARGV[1] now (ms)   ARGV[2] protocol   ARGV[3] digest   ARGV[4] "1" = only when none is set
-- ARGV[5] who (the API key id, or an operator)
--
-- Returns JSON {ok=true, r={set=bool}}.
--!include lib/common.lua

if ARGV[4] == '1' and redis.call('HEXISTS', KEYS[1], 'digest') == 1 then
  return ok({set = false})
end
redis.call('HSET', KEYS[1], 'digest', ARGV[3], 'updated_at', ARGV[1])
emit(KEYS[2], 'integration.key_set', ARGV[2], ARGV[1], {digest = ARGV[3], by = ARGV[5]})
return ok({set = true})
