#!lua
-- empenho_cancel.lua: void a PENDING empenho (CANCELLED, hold released) or reverse a COMMITTED one
-- (REVERSED, the committed amount returns to the balance).
--
-- 1. Unknown id -> UNKNOWN_EMPENHO. Placed at another store than a scoped key's (ARGV[9], ARGV[10])
--    -> STORE_NOT_ALLOWED. Already CANCELLED or REVERSED -> replay the first answer.
--    PENDING past its expiry -> expire it now, then EMPENHO_NOT_PENDING. EXPIRED ->
--    EMPENHO_NOT_PENDING.
-- 2. PENDING -> CANCELLED: reserved -= held. COMMITTED -> REVERSED: balance += what the
--    returns left of the committed amount (nothing left -> FULLY_RETURNED).
-- 3. Append empenho.cancelled / empenho.reversed.
--
-- KEYS[1] empenho hash   KEYS[2] empenho history   KEYS[3] convênio hash
-- KEYS[4] participant hash   KEYS[5] pending zset   KEYS[6] event stream
-- ARGV[1] empenho id   ARGV[2] now (ms)   ARGV[3] protocol   ARGV[4] reason
-- ARGV[5] ttl (s) of a final empenho in Redis   ARGV[6] convênio   ARGV[7] participant
-- ARGV[8] "1": a release by order processing, which keeps the hold's place in the limit windows
-- ARGV[9] the store a scoped key acts for, or ""   ARGV[10] its terminal, or ""
--
-- Returns JSON {ok=true, r={s=200, id, status, amount, balance?, protocol, replay}} or
-- {ok=false, code, x={status?, protocol}}.
--!include lib/common.lua
--!include lib/hold.lua
--!include lib/empenho.lua

local emp_key, hist_key, conv_key, part_key, pending_key, stream =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id, now, protocol, reason, final_ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])

local emp = hgetall(emp_key)
if not emp.status or emp.convenio ~= ARGV[6] or emp.participant ~= ARGV[7] then
  emit(stream, 'empenho.cancel_refused', protocol, now, {id = id, error = 'UNKNOWN_EMPENHO'})
  return fail('UNKNOWN_EMPENHO', {protocol = protocol})
end
if outside(emp, ARGV[9], ARGV[10]) then
  emit(stream, 'empenho.cancel_refused', protocol, now, {id = id, error = 'STORE_NOT_ALLOWED'})
  return fail('STORE_NOT_ALLOWED', {protocol = protocol})
end
local replayed = replay_cancel(emp)
if replayed then return replayed end
if overdue(emp, now) then
  expire_now(emp, emp_key, hist_key, conv_key, part_key, pending_key, stream, id, now,
             protocol, final_ttl, 'cancel')
  return expired_now('EMPENHO_NOT_PENDING', protocol)
end
if emp.status ~= 'PENDING' and emp.status ~= 'COMMITTED' then
  emit(stream, 'empenho.cancel_refused', protocol, now,
       {id = id, error = 'EMPENHO_NOT_PENDING', status = emp.status})
  return fail('EMPENHO_NOT_PENDING', {status = emp.status, protocol = protocol})
end
-- a reversal takes back what the returns have not
local left = tonumber(emp.committed_amount or 0) - num(emp.returned)
if emp.status == 'COMMITTED' and left <= 0 then
  emit(stream, 'empenho.cancel_refused', protocol, now,
       {id = id, error = 'FULLY_RETURNED', status = emp.status})
  return fail('FULLY_RETURNED', {status = emp.status, protocol = protocol})
end

-- every check passed: write
local pkey = pool_key(emp, conv_key, part_key)
local status, amount, etype, balance, reserved
if emp.status == 'PENDING' then
  status, amount, etype = 'CANCELLED', tonumber(emp.amount), 'empenho.cancelled'
  reserved = redis.call('HINCRBY', pkey, 'reserved', -amount)
  balance = num(redis.call('HGET', pkey, 'balance'))
  redis.call('ZREM', pending_key, id)
  -- a release by the ERP's order processing (alterasaldo off) is a sale made elsewhere:
  -- it keeps its place in the limit windows
  if ARGV[8] ~= '1' then unwind_windows(emp, conv_key, part_key, amount) end
else
  status, amount, etype = 'REVERSED', left, 'empenho.reversed'
  balance = redis.call('HINCRBY', pkey, 'balance', amount)
  reserved = num(redis.call('HGET', pkey, 'reserved'))
  unwind_windows(emp, conv_key, part_key, amount)
end
local result = {s = 200, id = id, status = status, amount = amount, balance = balance,
                protocol = protocol}
redis.call('HSET', emp_key, 'status', status, 'ended_at', now, 'cancel_reason', reason,
           'cancel_result', cjson.encode(result))
push_history(hist_key, status, now, protocol, amount)
retire(emp_key, hist_key, final_ttl)
emit(stream, etype, protocol, now,
     {id = id, convenio = emp.convenio, participant = emp.participant, amount = amount,
      reason = reason, balance = balance, reserved = reserved, pool = emp.pool,
      terminal = emp.terminal, store = emp.store, sale = emp.sale, answer = result})
return ok(result)
