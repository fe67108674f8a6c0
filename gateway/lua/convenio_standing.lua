#!lua
-- convenio_standing.lua: the system blocks a convênio for overdue duplicatas, and unblocks
-- it once they are settled, without touching a block an operator set by hand.
--
-- The status moves from ARGV[4] to ARGV[5] only when it is ARGV[4] now (ACTIVE ->
-- BLOCKED_OVERDUE, BLOCKED_OVERDUE -> ACTIVE); anything else is left as it is. A change
-- appends convenio.updated with the same shape the registry's script gives it, plus why.
--
-- KEYS[1] convênio hash   KEYS[2] event stream
-- ARGV[1] now (ms)   ARGV[2] protocol   ARGV[3] convênio   ARGV[4] from status
-- ARGV[5] to status   ARGV[6] reason (free text, for the journal)
--
-- Returns JSON {ok=true, r={changed=bool, status}} or {ok=false, code}.
--!include lib/common.lua

local key, stream = KEYS[1], KEYS[2]
local now, protocol, code, from, to, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local cur = hgetall(key)
if not cur.status then return fail('UNKNOWN_CONVENIO') end
if cur.status ~= from then return ok({changed = false, status = cur.status}) end

redis.call('HSET', key, 'status', to, 'updated_at', now)
local record = hgetall(key)
emit(stream, 'convenio.updated', protocol, now,
     {convenio = code, record = record, changed = {status = to}, reason = reason, by = 'system',
      previous_status = from,
      previous_total_limit = num(cur.total_limit), previous_balance = num(cur.balance),
      previous_reserved = num(cur.reserved)})
return ok({changed = true, status = to})
