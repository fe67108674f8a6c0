#!lua
-- vehicle_delete.lua: remove a participant's vehicle.
--
-- KEYS[1] participant vehicles hash   KEYS[2] event stream
-- ARGV[1] now (ms)   ARGV[2] protocol   ARGV[3] convênio   ARGV[4] participant   ARGV[5] plate
-- ARGV[6] who (the API key id, or an operator)
--
-- Returns JSON {ok=true, r={plate}} or {ok=false, code=UNKNOWN_VEHICLE}.
--!include lib/common.lua

if redis.call('HDEL', KEYS[1], ARGV[5]) == 0 then return fail('UNKNOWN_VEHICLE') end
emit(KEYS[2], 'vehicle.deleted', ARGV[2], ARGV[1],
     {convenio = ARGV[3], participant = ARGV[4], plate = ARGV[5], by = ARGV[6]})
return ok({plate = ARGV[5]})
