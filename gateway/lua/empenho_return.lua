#!lua
-- empenho_return.lua: a return (devolução) of part of a COMMITTED empenho, at any time after
-- the commit: back to the empenho's pool (POOL), or recorded for the caller to refund as the
-- customer's DEVOLUCAO credit (CREDIT: the pool keeps the sale).
--
-- 1. An idempotency record for this key exists: same fingerprint -> replay its answer, other
--    fingerprint -> IDEMPOTENCY_CONFLICT. Nothing else happens.
-- 2. Redis no longer holds the empenho (it left after ARGV[14] seconds) and ARGV[17] is "":
--    answer {forgotten=true} and write nothing; the caller reads the ledger and calls again
--    with the ledger's record, which is put back first (unless another return put it back
--    meanwhile: then Redis's is the one counted).
-- 3. Checks: the empenho is COMMITTED (else EMPENHO_NOT_COMMITTED); the amount is within what
--    is returnable = committed - returned (else RETURN_EXCEEDS_SALE with `returnable`).
-- 4. Approved: returned += amount, the return kept in the empenho's list; POOL: balance +=
--    amount and the limit windows of the sale's day and month get it back while current.
--    Approved or declined: store the answer under the idempotency key and append the
--    decision's event (empenho.returned / empenho.return_declined).
--
-- KEYS[1] empenho hash   KEYS[2] empenho history   KEYS[3] convênio hash
-- KEYS[4] participant hash   KEYS[5] idempotency record   KEYS[6] shard's event stream
-- ARGV[1] empenho id   ARGV[2] now (ms)   ARGV[3] protocol   ARGV[4] amount (centavos)
-- ARGV[5] request fingerprint   ARGV[6] idempotency ttl (s)   ARGV[7] store   ARGV[8] terminal
-- ARGV[9] reason or ""   ARGV[10] refund: POOL | CREDIT   ARGV[11] new return id
-- ARGV[12] api key id   ARGV[13] idempotency key digest   ARGV[14] ttl (s) of a final empenho
-- ARGV[15] convênio   ARGV[16] participant
-- ARGV[17] the ledger's record of the empenho (JSON {fields, history}), or ""
--
-- Returns JSON {ok=true, r={forgotten=true}}, or {ok=true, r={s=201|409|422, replay=bool, ...}}:
-- a decline is a decision, stored and replayed like an approval; ok=false only for
-- IDEMPOTENCY_CONFLICT.
--!include lib/common.lua
--!include lib/hold.lua
--!include lib/empenho.lua

local emp_key, hist_key, conv_key, part_key, idem_key, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id, now, protocol, amount = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local fingerprint, idem_ttl, refund, return_id = ARGV[5], tonumber(ARGV[6]), ARGV[10], ARGV[11]

local replayed = replay_answer(idem_key, fingerprint)
if replayed then return replayed end

local emp = hgetall(emp_key)
local ledger
if not emp.status then
  if ARGV[17] == '' then return ok({forgotten = true}) end
  ledger = cjson.decode(ARGV[17])
  emp = ledger.fields
end

local request = {id = id, return_id = return_id, amount = amount, store = ARGV[7], terminal = ARGV[8],
                 reason = ARGV[9], refund = refund, api_key = ARGV[12], idem = ARGV[13], fp = fingerprint,
                 convenio = ARGV[15], participant = ARGV[16]}

local function decided(etype, result)
  return decide(idem_key, idem_ttl, fingerprint, stream, etype, protocol, now, request, result)
end

local function decline(status, code, extra)
  local result = {s = status, error = code}
  for k, v in pairs(extra) do result[k] = v end
  request.error = code
  return decided('empenho.return_declined', result)
end

if emp.convenio ~= ARGV[15] or emp.participant ~= ARGV[16] then
  return decline(404, 'UNKNOWN_EMPENHO', {})
end
if emp.status ~= 'COMMITTED' then return decline(409, 'EMPENHO_NOT_COMMITTED', {status = emp.status}) end
local committed = tonumber(emp.committed_amount)
local returned = num(emp.returned)
if amount > committed - returned then
  return decline(422, 'RETURN_EXCEEDS_SALE', {returnable = committed - returned})
end
-- decode before the first write
local returns = {}
if emp.returns and emp.returns ~= '' then returns = cjson.decode(emp.returns) end

-- every check passed: write
if ledger then
  hset_table(emp_key, ledger.fields)
  if #ledger.history > 0 then redis.call('RPUSH', hist_key, unpack(ledger.history)) end
end
returned = returned + amount
local pkey = pool_key(emp, conv_key, part_key)
local balance
if refund == 'POOL' then
  balance = redis.call('HINCRBY', pkey, 'balance', amount)
  unwind_windows(emp, conv_key, part_key, amount)
else
  balance = num(redis.call('HGET', pkey, 'balance'))
end
returns[#returns + 1] = {id = return_id, amount = amount, at = tonumber(now), refund = refund, store = ARGV[7],
                         terminal = ARGV[8], reason = ARGV[9], protocol = protocol}
redis.call('HSET', emp_key, 'returned', returned, 'returns', cjson.encode(returns))
retire(emp_key, hist_key, tonumber(ARGV[14]))
request.pool, request.balance, request.reserved = emp.pool, balance, num(redis.call('HGET', pkey, 'reserved'))
request.returned, request.committed, request.sale, request.coupon = returned, committed, emp.sale, emp.coupon
request.order, request.restored = emp.order, ledger ~= nil
return decided('empenho.returned', {s = 201, id = return_id, empenho = id, amount = amount, returned = returned,
                                    returnable = committed - returned, balance = balance, refund = refund,
                                    order = emp.order})
