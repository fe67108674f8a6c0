#!lua
-- empenho_commit.lua: post a PENDING empenho: debit the committed amount (all or part of the hold)
-- from the balance and release the hold.
--
-- 1. Unknown id -> UNKNOWN_EMPENHO. Placed at another store than a scoped key's (ARGV[9], ARGV[10])
--    -> STORE_NOT_ALLOWED. Already COMMITTED: same coupon and amount -> replay the
--    first answer; otherwise COMMIT_CONFLICT. PENDING past its expiry -> expire it now,
--    then EMPENHO_NOT_PENDING. Any other status -> EMPENHO_NOT_PENDING.
-- 2. Amount over the hold -> COMMIT_EXCEEDS_HOLD.
-- 3. reserved -= held, balance -= committed; status COMMITTED; the vehicle's last km is kept;
--    the empenho leaves the expiry index; append empenho.committed.
--
-- KEYS[1] empenho hash   KEYS[2] empenho history  KEYS[3] convênio hash
-- KEYS[4] participant hash  KEYS[5] participant vehicles  KEYS[6] pending zset
-- KEYS[7] event stream
-- ARGV[1] empenho id   ARGV[2] now (ms)   ARGV[3] protocol   ARGV[4] coupon
-- ARGV[5] amount or "" for the whole hold   ARGV[6] ttl (s) of a final empenho in Redis
-- ARGV[7] convênio   ARGV[8] participant
-- ARGV[9] the store a scoped key acts for, or ""   ARGV[10] its terminal, or ""
--
-- Returns JSON {ok=true, r={s=200, id, status, amount, balance, protocol, replay}} or
-- {ok=false, code, x={status?, held?, protocol}}; every refusal is an event too.
--!include lib/common.lua
--!include lib/hold.lua
--!include lib/empenho.lua

local emp_key, hist_key, conv_key, part_key, veh_key, pending_key, stream =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local id, now, protocol, coupon = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local final_ttl = tonumber(ARGV[6])

local function refuse(code, extra)
  extra.protocol = protocol
  emit(stream, 'empenho.commit_refused', protocol, now,
       {id = id, error = code, coupon = coupon, amount = ARGV[5]})
  return fail(code, extra)
end

local emp = hgetall(emp_key)
if not emp.status or emp.convenio ~= ARGV[7] or emp.participant ~= ARGV[8] then
  return refuse('UNKNOWN_EMPENHO', {})
end
if outside(emp, ARGV[9], ARGV[10]) then return refuse('STORE_NOT_ALLOWED', {}) end
local held = tonumber(emp.amount)
local amount = commit_amount(emp, ARGV[5])

local committed, answer = replay_commit(emp, coupon, amount)
if committed == 'replay' then return answer end
if committed == 'conflict' then return refuse('COMMIT_CONFLICT', {status = emp.status}) end
if overdue(emp, now) then
  expire_now(emp, emp_key, hist_key, conv_key, part_key, pending_key, stream, id, now,
             protocol, final_ttl, 'commit')
  return expired_now('EMPENHO_NOT_PENDING', protocol)
end
if emp.status ~= 'PENDING' then return refuse('EMPENHO_NOT_PENDING', {status = emp.status}) end

if amount > held then return refuse('COMMIT_EXCEEDS_HOLD', {held = held}) end

-- decode the vehicle before the first write: a decode error after it would leave money moved
local vehicle
if emp.plate ~= '' and emp.odometer_km ~= '' then
  local raw = redis.call('HGET', veh_key, emp.plate)
  if raw then vehicle = cjson.decode(raw) end
end

-- every check passed: write
local pkey = pool_key(emp, conv_key, part_key)
local reserved = redis.call('HINCRBY', pkey, 'reserved', -held)
local balance = redis.call('HINCRBY', pkey, 'balance', -amount)
unwind_windows(emp, conv_key, part_key, held - amount)  -- a partial commit releases the rest
if vehicle then
  vehicle.last_km = tonumber(emp.odometer_km)
  vehicle.last_km_at = tonumber(now)
  redis.call('HSET', veh_key, emp.plate, cjson.encode(vehicle))
end
local result = {s = 200, id = id, status = 'COMMITTED', amount = amount, balance = balance,
                protocol = protocol}
local answer = cjson.encode(result)  -- once: stored for a replay, in the event, the reply
redis.call('HSET', emp_key, 'status', 'COMMITTED', 'committed_amount', amount,
           'coupon', coupon, 'ended_at', now, 'commit_result', answer)
redis.call('ZREM', pending_key, id)
push_history(hist_key, 'COMMITTED', now, protocol, amount)
retire(emp_key, hist_key, final_ttl)
emit_answered(stream, 'empenho.committed', protocol, now,
              {id = id, convenio = emp.convenio, participant = emp.participant, held = held,
               amount = amount, coupon = coupon, balance = balance, reserved = reserved,
               pool = emp.pool, plate = emp.plate, odometer_km = emp.odometer_km,
               terminal = emp.terminal, store = emp.store, sale = emp.sale}, answer)
return ok_encoded(answer)
