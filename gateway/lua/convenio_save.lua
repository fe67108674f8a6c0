#!lua
-- convenio_save.lua: create a convênio, or update some of its fields.
--
-- 1. create: the code must be new (CONVENIO_EXISTS); update: it must exist (UNKNOWN_CONVENIO).
-- 2. The sharing mode may not change once the convênio has participants (SHARING_MODE_LOCKED).
--    In individual mode the total limit may not fall below what is already allocated to the
--    participants (LIMIT_ALLOCATION_EXCEEDED).
-- 3. Balance: in shared mode the pool's balance starts at the total limit and a total-limit
--    change moves it by the same difference; no caller ever sets a balance.
-- 4. Append convenio.created / convenio.updated with the whole record after the change.
--
-- KEYS[1] convênio hash   KEYS[2] convênio's member set   KEYS[3] event stream
-- ARGV[1] "create" | "update"   ARGV[2] now (ms)   ARGV[3] protocol   ARGV[4] convênio code
-- ARGV[5] JSON object of the fields given, every value a string (see gateway/registry/convenios.py)
-- ARGV[6] who (the API key id, or an operator)   ARGV[7] why (free text)
--
-- Returns JSON {ok=true, r=<record>} or {ok=false, code, x}.
--!include lib/common.lua

local key, members_key, stream = KEYS[1], KEYS[2], KEYS[3]
local create, now, protocol, code = ARGV[1] == 'create', ARGV[2], ARGV[3], ARGV[4]
local f = cjson.decode(ARGV[5])
local by, reason = ARGV[6] or '', ARGV[7] or ''  -- who and why, for the history
local cur = hgetall(key)

if create and cur.status then return fail('CONVENIO_EXISTS') end
if not create and not cur.status then return fail('UNKNOWN_CONVENIO') end
local old_shared = cur.shared or f.shared or '0'
local shared = f.shared or old_shared
local members = redis.call('SCARD', members_key)
if not create and shared ~= old_shared and members > 0 then
  return fail('SHARING_MODE_LOCKED')
end
local old_total = num(cur.total_limit)
local total = num(f.total_limit or cur.total_limit)
local allocated = num(cur.allocated)
if shared == '0' and total < allocated then
  return fail('LIMIT_ALLOCATION_EXCEEDED', {total_limit = total, allocated = allocated})
end

-- every check passed: write
hset_table(key, f)
if create then
  redis.call('HSET', key, 'code', code, 'created_at', now, 'allocated', 0, 'reserved', 0,
             'balance', shared == '1' and total or 0)
  if not f.status then redis.call('HSET', key, 'status', 'ACTIVE') end
elseif shared ~= old_shared then
  redis.call('HSET', key, 'balance', shared == '1' and total or 0, 'reserved', 0)
elseif shared == '1' and total ~= old_total then
  redis.call('HINCRBY', key, 'balance', total - old_total)
end
redis.call('HSET', key, 'updated_at', now)
local record = hgetall(key)
emit(stream, create and 'convenio.created' or 'convenio.updated', protocol, now,
     {convenio = code, record = record, changed = f, previous_total_limit = old_total,
      previous_balance = num(cur.balance), previous_reserved = num(cur.reserved),
      previous_status = cur.status or '', by = by, reason = reason})
return ok(record)
