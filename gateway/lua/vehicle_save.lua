#!lua
-- vehicle_save.lua: register a participant's vehicle by plate, or update its description.
-- The last odometer reading (kept by empenho_commit.lua) survives an update.
--
-- KEYS[1] convênio hash   KEYS[2] participant hash   KEYS[3] participant vehicles hash
-- KEYS[4] event stream
-- ARGV[1] now (ms)   ARGV[2] protocol   ARGV[3] convênio   ARGV[4] participant
-- ARGV[5] plate   ARGV[6] description   ARGV[7] who (the API key id, or an operator)
--
-- Returns JSON {ok=true, r={vehicle..., created=bool}} or
-- {ok=false, code=UNKNOWN_CONVENIO|UNKNOWN_PARTICIPANT}.
--!include lib/common.lua

if redis.call('EXISTS', KEYS[1]) == 0 then return fail('UNKNOWN_CONVENIO') end
if redis.call('EXISTS', KEYS[2]) == 0 then return fail('UNKNOWN_PARTICIPANT') end
local raw = redis.call('HGET', KEYS[3], ARGV[5])
local v = {plate = ARGV[5], registered_at = tonumber(ARGV[1])}
if raw then v = cjson.decode(raw) end
v.description = ARGV[6]
redis.call('HSET', KEYS[3], ARGV[5], cjson.encode(v))
emit(KEYS[4], 'vehicle.saved', ARGV[2], ARGV[1],
     {convenio = ARGV[3], participant = ARGV[4], vehicle = v, by = ARGV[7]})
v.created = raw == false
return ok(v)
