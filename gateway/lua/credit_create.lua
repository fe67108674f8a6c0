#!lua
-- credit_create.lua: register a credit in a customer's current account, under a
-- reference that names it for good.
--
-- 1. The reference is taken: same fingerprint (same type, amount, origin, expiry) -> replay
--    the credit as it was created; other fingerprint -> CREDIT_REFERENCE_EXISTS.
-- 2. An expiry not after now -> INVALID_REQUEST (field expires_at): such a credit could never
--    be used.
-- 3. Store the credit (remaining = amount), its reference, mark it open; append credit.created.
--
-- KEYS[1] customer's credits hash   KEYS[2] customer's references hash
-- KEYS[3] customer's open-credits set   KEYS[4] shard's event stream
-- ARGV[1] customer   ARGV[2] new credit id   ARGV[3] reference   ARGV[4] type
-- ARGV[5] amount (centavos)   ARGV[6] channel (STORE | WEB)   ARGV[7] store or ""
-- ARGV[8] terminal or ""   ARGV[9] order or ""   ARGV[10] expires at (ms) or ""
-- ARGV[11] now (ms)   ARGV[12] protocol   ARGV[13] request fingerprint   ARGV[14] api key id
-- ARGV[15] the return this credit refunds, or ""   ARGV[16] the sale (empenho) it returned, or ""
--
-- Returns JSON {ok=true, r={s=201, credit=<record>, replay=bool}} or
-- {ok=false, code=CREDIT_REFERENCE_EXISTS|INVALID_REQUEST, x={id?|field?}}.
--!include lib/common.lua

local credits_key, refs_key, open_key, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, protocol, fingerprint = tonumber(ARGV[11]), ARGV[12], ARGV[13]

local existing = redis.call('HGET', refs_key, ARGV[3])
if existing then
  local rec = cjson.decode(redis.call('HGET', credits_key, existing))
  if rec.fp ~= fingerprint then return fail('CREDIT_REFERENCE_EXISTS', {id = existing}) end
  return ok({s = 201, credit = rec, replay = true})
end
local expires_at = tonumber(ARGV[10]) or 0
if ARGV[10] ~= '' and expires_at <= now then return fail('INVALID_REQUEST', {field = 'expires_at'}) end

-- every check passed: write
local amount = tonumber(ARGV[5])
local rec = {id = ARGV[2], customer = ARGV[1], ref = ARGV[3], type = ARGV[4], amount = amount,
             remaining = amount, channel = ARGV[6], store = ARGV[7], terminal = ARGV[8],
             order = ARGV[9], expires_at = expires_at, created_at = now,
             seq = redis.call('HLEN', refs_key) + 1, protocol = protocol, fp = fingerprint}
redis.call('HSET', credits_key, rec.id, cjson.encode(rec))
redis.call('HSET', refs_key, rec.ref, rec.id)
redis.call('SADD', open_key, rec.id)
emit(stream, 'credit.created', protocol, ARGV[11],
     {customer = rec.customer, credit = rec, api_key = ARGV[14], return_id = ARGV[15], sale = ARGV[16]})
return ok({s = 201, credit = rec})
