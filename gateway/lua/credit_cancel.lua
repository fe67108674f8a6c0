#!lua
-- credit_cancel.lua: void a PENDING credit hold (CANCELLED: every part back to its credit) or
-- reverse a COMMITTED one (REVERSED, the order was returned: what each committed part has not
-- given back by a return goes back to the credit it came from; a credit expired meanwhile gets
-- its share and stays expired, marked `expired` in the event).
--
-- 1. Unknown id (or another customer's) -> UNKNOWN_CREDIT_HOLD. Placed at another store than a
--    scoped key's (ARGV[7], ARGV[8]) -> STORE_NOT_ALLOWED. Already CANCELLED or REVERSED ->
--    replay the first answer. PENDING past its expiry -> expire it now, then
--    CREDIT_HOLD_NOT_PENDING. EXPIRED -> CREDIT_HOLD_NOT_PENDING.
-- 2. PENDING -> CANCELLED: each part's held amount back. COMMITTED -> REVERSED: each part's
--    committed amount less its returns back; returned whole already -> FULLY_RETURNED.
-- 3. Append credit.cancelled / credit.reversed.
--
-- KEYS[1] credit hold hash   KEYS[2] customer's credits hash   KEYS[3] customer's open-credits set
-- KEYS[4] shard's pending credit holds zset   KEYS[5] shard's event stream
-- ARGV[1] hold id   ARGV[2] now (ms)   ARGV[3] protocol   ARGV[4] reason
-- ARGV[5] ttl (s) of a final hold in Redis   ARGV[6] customer
-- ARGV[7] the store a scoped key acts for, or ""   ARGV[8] its terminal, or ""
--
-- Returns JSON {ok=true, r={s=200, id, status, amount, credits, protocol, replay}} or
-- {ok=false, code, x={status?, protocol}}.
--!include lib/common.lua
--!include lib/hold.lua
--!include lib/credit.lua

local hold_key, credits_key, open_key, pending_key, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, now, protocol, reason, final_ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])

local function refuse(code, status)
  emit(stream, 'credit.cancel_refused', protocol, now,
       {id = id, customer = ARGV[6], error = code, status = status})
  return fail(code, {status = status, protocol = protocol})
end

local hold = hgetall(hold_key)
if not hold.status or hold.customer ~= ARGV[6] then return refuse('UNKNOWN_CREDIT_HOLD') end
if outside(hold, ARGV[7], ARGV[8]) then return refuse('STORE_NOT_ALLOWED') end
local replayed = replay_cancel(hold)
if replayed then return replayed end
if hold.status ~= 'PENDING' and hold.status ~= 'COMMITTED' then
  return refuse('CREDIT_HOLD_NOT_PENDING', hold.status)
end
local parts = cjson.decode(hold.parts)
local recs = load_credits(credits_key, parts)
if not recs then return refuse('UNKNOWN_CREDIT_HOLD') end  -- its credits are gone: nothing to give back
if overdue(hold, now) then
  expire_hold(hold, hold_key, parts, recs, credits_key, open_key, pending_key, stream, now, protocol,
              final_ttl, 'cancel')
  return expired_now('CREDIT_HOLD_NOT_PENDING', protocol)
end

local status, etype, amount, amounts = 'CANCELLED', 'credit.cancelled', tonumber(hold.amount), {}
if hold.status == 'COMMITTED' then
  status, etype, amount = 'REVERSED', 'credit.reversed', tonumber(hold.committed_amount) - num(hold.returned)
  if amount == 0 then return refuse('FULLY_RETURNED', hold.status) end
end

-- every check passed: write
for i, p in ipairs(parts) do amounts[i] = status == 'REVERSED' and p.k - (p.r or 0) or p.h end
local moved, shown = give_back(credits_key, open_key, recs, parts, amounts, tonumber(now))
local result = {s = 200, id = id, status = status, amount = amount, credits = shown, protocol = protocol}
redis.call('HSET', hold_key, 'status', status, 'ended_at', now, 'cancel_reason', reason,
           'cancel_result', cjson.encode(result), 'history', with_history(hold, status, now, protocol, amount))
if status == 'CANCELLED' then redis.call('ZREM', pending_key, id) end
retire_hold(hold_key, final_ttl)
emit(stream, etype, protocol, now,
     {id = id, customer = hold.customer, amount = amount, reason = reason, order = hold.order,
      channel = hold.channel, store = hold.store, terminal = hold.terminal, parts = moved,
      answer = result})
return ok(result)
