#!lua
-- store_save.lua: register a store, or change its name, time zone or status.
--
-- 1. create: the code must be new (STORE_EXISTS);
--    update: it must exist (UNKNOWN_STORE).
-- 2. Store the fields given, index the code, append store.saved with the whole record.
--
-- KEYS[1] store hash   KEYS[2] the set of store codes   KEYS[3] global event stream
-- ARGV[1] "create" | "update"   ARGV[2] now (ms)   ARGV[3] protocol   ARGV[4] store code
-- ARGV[5] JSON object of the fields given (name, time_zone, status), every value a string
-- ARGV[6] who (the API key, or the operator)
--
-- Returns JSON {ok=true, r=<record>} or {ok=false, code=STORE_EXISTS|UNKNOWN_STORE}.
--!include lib/common.lua

local key, codes, stream = KEYS[1], KEYS[2], KEYS[3]
local create, now, code = ARGV[1] == 'create', ARGV[2], ARGV[4]
local f = cjson.decode(ARGV[5])
local exists = redis.call('EXISTS', key) == 1
if create and exists then return fail('STORE_EXISTS') end
if not create and not exists then return fail('UNKNOWN_STORE') end

-- every check passed: write
if create then
  redis.call('HSET', key, 'code', code, 'status', 'ACTIVE', 'time_zone', 'America/Sao_Paulo', 'created_at', now)
end
hset_table(key, f)
redis.call('HSET', key, 'updated_at', now)
redis.call('SADD', codes, code)
local record = hgetall(key)
emit(stream, 'store.saved', ARGV[3], now, {store = record, by = ARGV[6]})
return ok(record)
