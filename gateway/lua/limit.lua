#!lua
-- limit.lua: read what a participant may spend, as one consistent snapshot (no writes).
--
-- KEYS[1] convênio hash   KEYS[2] participant hash
--
-- Returns JSON {ok=true, r={conv={...}, part={...}}} with the raw fields, or
-- {ok=false, code=UNKNOWN_CONVENIO|UNKNOWN_PARTICIPANT}.
--!include lib/common.lua

local c = redis.call('HMGET', KEYS[1], 'status', 'shared', 'total_limit', 'tolerance',
                     'balance', 'reserved')
if not c[1] then return fail('UNKNOWN_CONVENIO') end
local p = redis.call('HMGET', KEYS[2], 'status', 'limit', 'balance', 'reserved')
if not p[1] then return fail('UNKNOWN_PARTICIPANT') end
return ok({conv = {status = c[1], shared = c[2] == '1', limit = num(c[3]),
                   tolerance = num(c[4]), balance = num(c[5]), reserved = num(c[6])},
           part = {status = p[1], limit = num(p[2]), balance = num(p[3]),
                   reserved = num(p[4])}})
