#!lua
-- empenho_hold.lua: place an empenho (authorization hold) for one sale, or decline it.
--
-- 0. On one server (ARGV[21] "1"), the Idempotency-Key's claim in the same call: the first
--    request to use the key owns it, whatever convênio it named; another request ->
--    IDEMPOTENCY_CONFLICT. (On a cluster the claim lies in no shard's slot: the caller makes it
--    first, on its own, and passes this shard's idempotency record in its place, untouched.)
-- 1. An idempotency record for this key exists: same fingerprint -> replay its answer,
--    other fingerprint -> IDEMPOTENCY_CONFLICT. Nothing else happens.
-- 2. Checks, in order: convênio known and ACTIVE and accepted at the store (its `stores`, when
--    it names some), participant known and ACTIVE, password
--    proof given and bound to this convênio and participant, vehicle registered (when the
--    convênio requires one, or a plate is given), amount within available =
--    balance + tolerance - reserved (of the pool in shared mode, of the participant otherwise).
-- 3. Approved: add the amount to the pool's reserved, create the empenho PENDING until ARGV[5],
--    index it for expiry, consume the proof. Approved or declined: store the answer under the
--    idempotency key and append the decision's event (empenho.held / empenho.declined).
--
-- KEYS[1] convênio hash          KEYS[2] participant hash       KEYS[3] participant vehicles
-- KEYS[4] password proof         KEYS[5] idempotency record     KEYS[6] new empenho hash
-- KEYS[7] new empenho history    KEYS[8] shard's pending zset   KEYS[9] shard's event stream
-- KEYS[10] the Idempotency-Key's claim (on a cluster: KEYS[5] again, left alone)
-- ARGV[1] convênio code   ARGV[2] participant code   ARGV[3] amount (centavos)
-- ARGV[4] now (ms)        ARGV[5] expires at (ms)    ARGV[6] new empenho id
-- ARGV[7] protocol        ARGV[8] request fingerprint ARGV[9] idempotency ttl (s)
-- ARGV[10] terminal       ARGV[11] store             ARGV[12] sale
-- ARGV[13] plate or ""    ARGV[14] odometer km or "" ARGV[15] api key id
-- ARGV[16] "1" when a proof was given   ARGV[17] idempotency key digest
-- ARGV[18] order or ""   ARGV[19] the local day (YYYYMMDD)   ARGV[20] the local month (YYYYMM)
-- ARGV[21] "1": claim the Idempotency-Key here (one server), "0": the caller did
--
-- Limit windows: the convênio's and the participant's hashes may cap one order
-- (w_order), a local day (w_day) and a local month (w_month); the spending of the current
-- day and month is counted in wd/wds and wm/wms of each hash that has a cap (counting starts
-- when a cap is set), and commit, cancel and expiry give back what they release.
--
-- The event carries the request, the answer, the idempotency key's digest and fingerprint
-- and the pool's balance and reserved after the change: Postgres can rebuild Redis from it.
--
-- Returns JSON: {ok=true, r={s=status, replay=bool, body...}}; declines are ok=true too with
-- r.s = 404/422 and r.error = code, because a decline is a decision, stored and replayed
-- like an approval. ok=false only for IDEMPOTENCY_CONFLICT.
--!include lib/common.lua
--!include lib/hold.lua

local conv_key, part_key, veh_key, proof_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local idem_key, emp_key, hist_key, pending_key, stream =
  KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local convenio, participant, amount = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now, expires_at, id, protocol = ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]
local fingerprint, idem_ttl = ARGV[8], tonumber(ARGV[9])
local plate, km = ARGV[13], ARGV[14]

if ARGV[21] == '1' then
  local first = redis.call('SET', KEYS[10], fingerprint, 'NX', 'GET', 'EX', idem_ttl)
  if first and first ~= fingerprint then return fail('IDEMPOTENCY_CONFLICT') end
end

local replayed = replay_answer(idem_key, fingerprint)
if replayed then return replayed end

local request = {convenio = convenio, participant = participant, amount = amount,
                 terminal = ARGV[10], store = ARGV[11], sale = ARGV[12], plate = plate,
                 odometer_km = km, api_key = ARGV[15], idem = ARGV[17], fp = fingerprint,
                 order = ARGV[18]}

local function decided(etype, result)
  return decide(idem_key, idem_ttl, fingerprint, stream, etype, protocol, now, request, result)
end

local function decline(status, code, available, window)
  request.error = code
  request.available = available
  local result = {s = status, error = code, available = available}
  if window then
    request.window, result.scope, result.remaining = window, window.scope, window.remaining
  end
  return decided('empenho.declined', result)
end

-- A hash's window caps (from index o of its HMGET reply) against this amount: nil when it
-- has no cap; else whether it counts, and the first window the amount does not fit in.
-- Windows never move backwards: a request stamped just before midnight by one gateway that
-- arrives after one stamped just after it by another counts in the later, stored, day.
local day, month = ARGV[19], ARGV[20]
local function current(stored, asked)
  if stored and stored > asked then return stored end
  return asked
end
local function window_of(h, o, scope)
  local order_max, day_max, month_max = tonumber(h[o]), tonumber(h[o + 1]), tonumber(h[o + 2])
  if not (order_max or day_max or month_max) then return false, nil end
  local used_day = (h[o + 3] == current(h[o + 3], day)) and num(h[o + 4]) or 0
  local used_month = (h[o + 5] == current(h[o + 5], month)) and num(h[o + 6]) or 0
  if order_max and amount > order_max then
    return true, {code = 'ORDER_LIMIT_EXCEEDED', scope = scope, remaining = order_max}
  end
  if day_max and amount > day_max - used_day then
    return true, {code = 'DAILY_LIMIT_EXCEEDED', scope = scope, remaining = math.max(0, day_max - used_day)}
  end
  if month_max and amount > month_max - used_month then
    return true, {code = 'MONTHLY_LIMIT_EXCEEDED', scope = scope,
                  remaining = math.max(0, month_max - used_month)}
  end
  return true, nil
end

-- count a hold in a hash's current day and month (a new day or month starts from zero);
-- returns the day and month it was counted in, for commit/cancel/expiry to give it back
local function count(key, h, o)
  local d, m = current(h[o + 3], day), current(h[o + 5], month)
  if h[o + 3] == d then redis.call('HINCRBY', key, 'wds', amount)
  else redis.call('HSET', key, 'wd', d, 'wds', amount) end
  if h[o + 5] == m then redis.call('HINCRBY', key, 'wms', amount)
  else redis.call('HSET', key, 'wm', m, 'wms', amount) end
  return d, m
end

local WINDOW_FIELDS = {'w_order', 'w_day', 'w_month', 'wd', 'wds', 'wm', 'wms'}
-- `stores`: ",L001,L002,", the only stores where the convênio is accepted; unset or "": every store
local conv = redis.call('HMGET', conv_key, 'status', 'shared', 'tolerance', 'balance',
                        'reserved', 'requires_vehicle', 'stores', unpack(WINDOW_FIELDS))
if not conv[1] then return decline(404, 'UNKNOWN_CONVENIO') end
local part = redis.call('HMGET', part_key, 'status', 'balance', 'reserved', unpack(WINDOW_FIELDS))
if not part[1] then return decline(404, 'UNKNOWN_PARTICIPANT') end

local shared = conv[2] == '1'
local balance, reserved = num(part[2]), num(part[3])
local pool_key, pool = part_key, 'P'
if shared then balance, reserved, pool_key, pool = num(conv[4]), num(conv[5]), conv_key, 'C' end
local available = balance + num(conv[3]) - reserved

if conv[1] ~= 'ACTIVE' then return decline(422, 'CONVENIO_BLOCKED', available) end
if conv[7] and conv[7] ~= '' and not string.find(conv[7], ',' .. ARGV[11] .. ',', 1, true) then
  return decline(422, 'STORE_NOT_ACCEPTED', available)
end
if part[1] ~= 'ACTIVE' then return decline(422, 'PARTICIPANT_BLOCKED', available) end
if ARGV[16] ~= '1' then return decline(422, 'PASSWORD_PROOF_REQUIRED', available) end
-- a proof reads "convênio\nparticipant\ndeadline ms"; Redis's TTL only cleans it up
local proof = redis.call('GET', proof_key)
local bound = convenio .. '\n' .. participant .. '\n'
local deadline = proof and string.sub(proof, #bound + 1)
if not proof or string.sub(proof, 1, #bound) ~= bound or not string.match(deadline, '^%d+$')
   or tonumber(deadline) <= tonumber(now) then
  return decline(422, 'PASSWORD_PROOF_INVALID', available)
end
if plate ~= '' or conv[6] == '1' then
  if plate == '' or redis.call('HEXISTS', veh_key, plate) == 0 then
    return decline(422, 'VEHICLE_NOT_REGISTERED', available)
  end
end
if amount > available then return decline(422, 'INSUFFICIENT_LIMIT', available) end
local part_counts, part_over = window_of(part, 4, 'participant')
if part_over then return decline(422, part_over.code, available, part_over) end
local conv_counts, conv_over = window_of(conv, 8, 'convenio')
if conv_over then return decline(422, conv_over.code, available, conv_over) end

-- every check passed: write
local counted = {}
if part_counts then
  local d, m = count(part_key, part, 4)
  counted[#counted + 1] = 'wdP'; counted[#counted + 1] = d
  counted[#counted + 1] = 'wmP'; counted[#counted + 1] = m
end
if conv_counts then
  local d, m = count(conv_key, conv, 8)
  counted[#counted + 1] = 'wdC'; counted[#counted + 1] = d
  counted[#counted + 1] = 'wmC'; counted[#counted + 1] = m
end
local pool_reserved = redis.call('HINCRBY', pool_key, 'reserved', amount)
redis.call('DEL', proof_key)
redis.call('HSET', emp_key, 'id', id, 'convenio', convenio, 'participant', participant,
           'amount', amount, 'status', 'PENDING', 'pool', pool, 'created_at', now,
           'expires_at', expires_at, 'terminal', ARGV[10], 'store', ARGV[11],
           'sale', ARGV[12], 'plate', plate, 'odometer_km', km, 'protocol', protocol,
           'order', ARGV[18])
if #counted > 0 then
  redis.call('HSET', emp_key, unpack(counted))
  -- the ledger keeps them too: a return long after the sale gives back to those windows
  request.counted_in = {}
  for i = 1, #counted, 2 do request.counted_in[counted[i]] = counted[i + 1] end
end
redis.call('RPUSH', hist_key, history_entry('PENDING', now, protocol, amount))
redis.call('ZADD', pending_key, expires_at, id)
available = available - amount
request.id = id
request.expires_at = expires_at
request.available = available
request.pool = pool
request.balance = balance
request.reserved = pool_reserved
return decided('empenho.held', {s = 201, id = id, status = 'PENDING', amount = amount,
                                available = available, expires_at = expires_at})
