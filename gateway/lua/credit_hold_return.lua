#!lua
-- credit_hold_return.lua: a return (devolução) of part of a COMMITTED credit hold, at any time
-- after the commit: each centavo back to the credit it came from, last-picked first. A credit
-- that has expired meanwhile gets its share back but stays EXPIRED (it is not revived): that
-- share lapses with it, as it would have had the order never been placed, and the event says so
-- (`expired` on the part), which the ledger records as a RETURN_EXPIRED movement.
--
-- 1. An idempotency record for this key exists: same fingerprint -> replay its answer, other
--    fingerprint -> IDEMPOTENCY_CONFLICT. Nothing else happens.
-- 2. Redis no longer holds the hold (it left after ARGV[13] seconds) and ARGV[15] is "": answer
--    {forgotten=true} and write nothing; the caller reads the ledger and calls again with the
--    ledger's record, which is put back first (unless another return put it back meanwhile:
--    then Redis's is the one counted).
-- 3. Checks: the hold is the customer's (else UNKNOWN_CREDIT_HOLD); it is COMMITTED (else
--    CREDIT_HOLD_NOT_COMMITTED with `status`); the amount is within what is returnable =
--    committed - returned (else RETURN_EXCEEDS_SALE with `returnable`); the credits it took are
--    in Redis (else UNKNOWN_CREDIT_HOLD: nothing to give back to).
-- 4. Approved: from the last part backwards, each part gives back up to what it committed less
--    what it already gave back (its `r`); returned += amount, the return kept in the hold's list.
--    Approved or declined: store the answer under the idempotency key and append the decision's
--    event (credit.returned / credit.return_declined).
--
-- KEYS[1] credit hold hash   KEYS[2] customer's credits hash   KEYS[3] customer's open-credits set
-- KEYS[4] idempotency record   KEYS[5] shard's event stream
-- ARGV[1] hold id   ARGV[2] now (ms)   ARGV[3] protocol   ARGV[4] amount (centavos)
-- ARGV[5] request fingerprint   ARGV[6] idempotency ttl (s)   ARGV[7] store or ""
-- ARGV[8] terminal or ""   ARGV[9] reason or ""   ARGV[10] new return id   ARGV[11] api key id
-- ARGV[12] idempotency key digest   ARGV[13] ttl (s) of a final hold in Redis   ARGV[14] customer
-- ARGV[15] the ledger's record of the hold (JSON: its hash fields), or ""
--
-- Returns JSON {ok=true, r={forgotten=true}}, or {ok=true, r={s=201|404|409|422, replay=bool, ...}}:
-- a decline is a decision, stored and replayed like an approval; ok=false only for
-- IDEMPOTENCY_CONFLICT.
--!include lib/common.lua
--!include lib/hold.lua
--!include lib/credit.lua

local hold_key, credits_key, open_key, idem_key, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, now, protocol, amount = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local fingerprint, idem_ttl, return_id, customer = ARGV[5], tonumber(ARGV[6]), ARGV[10], ARGV[14]

local replayed = replay_answer(idem_key, fingerprint)
if replayed then return replayed end

local hold = hgetall(hold_key)
local ledger
if not hold.status then
  if ARGV[15] == '' then return ok({forgotten = true}) end
  ledger = cjson.decode(ARGV[15])
  hold = ledger
end

local request = {id = id, return_id = return_id, customer = customer, amount = amount, store = ARGV[7],
                 terminal = ARGV[8], reason = ARGV[9], api_key = ARGV[11], idem = ARGV[12], fp = fingerprint}

local function decided(etype, result)
  return decide(idem_key, idem_ttl, fingerprint, stream, etype, protocol, now, request, result)
end

local function decline(status, code, extra)
  local result = {s = status, error = code}
  for k, v in pairs(extra) do result[k] = v end
  request.error = code
  return decided('credit.return_declined', result)
end

if hold.customer ~= customer then return decline(404, 'UNKNOWN_CREDIT_HOLD', {}) end
if hold.status ~= 'COMMITTED' then
  return decline(409, 'CREDIT_HOLD_NOT_COMMITTED', {status = hold.status})
end
local committed, returned = tonumber(hold.committed_amount), num(hold.returned)
if amount > committed - returned then
  return decline(422, 'RETURN_EXCEEDS_SALE', {returnable = committed - returned})
end
-- decode before the first write
local parts = cjson.decode(hold.parts)
local recs = load_credits(credits_key, parts)
if not recs then return decline(404, 'UNKNOWN_CREDIT_HOLD', {}) end
local returns = {}
if hold.returns and hold.returns ~= '' then returns = cjson.decode(hold.returns) end

-- every check passed: write
if ledger then hset_table(hold_key, ledger) end
local back, left = {}, amount
for i = #parts, 1, -1 do  -- last-picked first
  local p = parts[i]
  local r = math.min(left, (p.k or 0) - (p.r or 0))
  back[i], left = r, left - r
  p.r = (p.r or 0) + r
end
local moved, shown = give_back(credits_key, open_key, recs, parts, back, tonumber(now))
for _, m in ipairs(moved) do m.returned = parts[m.part].r end
returned = returned + amount
returns[#returns + 1] = {id = return_id, amount = amount, at = tonumber(now), store = ARGV[7],
                         terminal = ARGV[8], reason = ARGV[9], protocol = protocol, credits = shown}
redis.call('HSET', hold_key, 'parts', cjson.encode(parts), 'returned', returned, 'returns', cjson.encode(returns))
retire_hold(hold_key, tonumber(ARGV[13]))
request.parts, request.returned, request.committed = moved, returned, committed
request.order, request.channel, request.restored = hold.order, hold.channel, ledger ~= nil
return decided('credit.returned', {s = 201, id = return_id, hold = id, amount = amount, returned = returned,
                                   returnable = committed - returned, credits = shown, order = hold.order})
