#!lua
-- credit_hold.lua: an order pays with the customer's credits: hold the amount over as many
-- credits as it needs, or decline.
--
-- 1. An idempotency record for this key exists: same fingerprint -> replay its answer, other
--    fingerprint -> IDEMPOTENCY_CONFLICT. Nothing else happens.
-- 2. The usable credits: open (remaining > 0) and not expired (no expiry, or expiry after
--    now), in the order they are taken: those expiring first (soonest expiry first), then
--    those without expiry; among equals the oldest (registered first).
-- 3. amount > what they add up to -> decline INSUFFICIENT_CREDIT with `available`.
-- 4. Approved: take from each credit in that order (remaining -= part) until the amount is
--    covered, store the hold PENDING until ARGV[4] with its parts, index it for expiry.
--    Approved or declined: store the answer under the idempotency key and append the
--    decision's event (credit.held / credit.declined).
--
-- KEYS[1] customer's credits hash   KEYS[2] customer's open-credits set
-- KEYS[3] idempotency record        KEYS[4] new credit hold hash
-- KEYS[5] shard's pending credit holds zset   KEYS[6] shard's event stream
-- ARGV[1] customer   ARGV[2] amount (centavos)   ARGV[3] now (ms)   ARGV[4] expires at (ms)
-- ARGV[5] new hold id   ARGV[6] protocol   ARGV[7] request fingerprint
-- ARGV[8] idempotency ttl (s)   ARGV[9] order   ARGV[10] channel (STORE | WEB)
-- ARGV[11] store or ""   ARGV[12] terminal or ""   ARGV[13] api key id
-- ARGV[14] idempotency key digest
--
-- Returns JSON {ok=true, r={s=201|422, replay=bool, ...}}: a decline is a decision, stored and
-- replayed like an approval; ok=false only for IDEMPOTENCY_CONFLICT.
--!include lib/common.lua
--!include lib/hold.lua
--!include lib/credit.lua

local credits_key, open_key, idem_key, hold_key, pending_key, stream =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local customer, amount, now, expires_at = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local id, protocol, fingerprint, idem_ttl = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])

local replayed = replay_answer(idem_key, fingerprint)
if replayed then return replayed end

local request = {customer = customer, amount = amount, order = ARGV[9], channel = ARGV[10],
                 store = ARGV[11], terminal = ARGV[12], api_key = ARGV[13], idem = ARGV[14],
                 fp = fingerprint}

local function decided(etype, result)
  return decide(idem_key, idem_ttl, fingerprint, stream, etype, protocol, ARGV[3], request, result)
end

-- the usable credits, in the order they are taken
local usable, available = {}, 0
local ids = redis.call('SMEMBERS', open_key)
if #ids > 0 then
  for _, raw in ipairs(redis.call('HMGET', credits_key, unpack(ids))) do
    if raw then
      local rec = cjson.decode(raw)
      if rec.remaining > 0 and (rec.expires_at == 0 or rec.expires_at > now) then
        usable[#usable + 1] = rec
        available = available + rec.remaining
      end
    end
  end
end
local NEVER = math.huge
table.sort(usable, function(a, b)
  local ea, eb = a.expires_at == 0 and NEVER or a.expires_at, b.expires_at == 0 and NEVER or b.expires_at
  if ea ~= eb then return ea < eb end
  return a.seq < b.seq
end)

if amount > available then
  request.error, request.available = 'INSUFFICIENT_CREDIT', available
  return decided('credit.declined', {s = 422, error = 'INSUFFICIENT_CREDIT', available = available})
end

-- every check passed: write
local parts, moved, shown, left = {}, {}, {}, amount
for _, rec in ipairs(usable) do
  if left == 0 then break end
  local part = math.min(rec.remaining, left)
  left = left - part
  rec.remaining = rec.remaining - part
  put_credit(credits_key, open_key, rec)
  parts[#parts + 1] = {c = rec.id, h = part}
  moved[#moved + 1] = {credit = rec.id, reference = rec.ref, type = rec.type, amount = part,
                       remaining = rec.remaining}
  shown[#shown + 1] = {reference = rec.ref, type = rec.type, amount = part}
end
local history = cjson.encode({{status = 'PENDING', at = now, protocol = protocol, amount = amount}})
redis.call('HSET', hold_key, 'id', id, 'customer', customer, 'amount', amount, 'status', 'PENDING',
           'order', ARGV[9], 'channel', ARGV[10], 'store', ARGV[11], 'terminal', ARGV[12],
           'created_at', ARGV[3], 'expires_at', ARGV[4], 'protocol', protocol, 'api_key', ARGV[13],
           'parts', cjson.encode(parts), 'history', history)
redis.call('ZADD', pending_key, expires_at, id)
available = available - amount
request.id, request.expires_at, request.available, request.parts = id, expires_at, available, moved
return decided('credit.held', {s = 201, id = id, status = 'PENDING', customer = customer, amount = amount,
                               order = ARGV[9], credits = shown, available = available,
                               expires_at = expires_at})
