#!lua
-- credit_commit.lua: post a PENDING credit hold: the credits it took are debited for good, all
-- of the hold or less; what is not committed goes back to the credits, last-picked first.
--
-- 1. Unknown id (or another customer's) -> UNKNOWN_CREDIT_HOLD. Placed at another store than a
--    scoped key's (ARGV[8], ARGV[9]) -> STORE_NOT_ALLOWED. Already COMMITTED: same coupon
--    and amount -> replay the first answer; otherwise CREDIT_COMMIT_CONFLICT. PENDING past its
--    expiry -> expire it now (every part back to its credit), then CREDIT_HOLD_NOT_PENDING.
--    Any other status -> CREDIT_HOLD_NOT_PENDING.
-- 2. Amount over the hold -> CREDIT_COMMIT_EXCEEDS_HOLD.
-- 3. Release held - amount from the last part backwards (each part's committed `k` is what is
--    left of it); status COMMITTED; the hold leaves the expiry index; append credit.committed.
--
-- KEYS[1] credit hold hash   KEYS[2] customer's credits hash   KEYS[3] customer's open-credits set
-- KEYS[4] shard's pending credit holds zset   KEYS[5] shard's event stream
-- ARGV[1] hold id   ARGV[2] now (ms)   ARGV[3] protocol   ARGV[4] coupon
-- ARGV[5] amount or "" for the whole hold   ARGV[6] ttl (s) of a final hold in Redis
-- ARGV[7] customer   ARGV[8] the store a scoped key acts for, or ""   ARGV[9] its terminal, or ""
--
-- Returns JSON {ok=true, r={s=200, id, status, amount, credits, protocol, replay}} or
-- {ok=false, code, x={status?, held?, protocol}}; every refusal is an event too.
--!include lib/common.lua
--!include lib/hold.lua
--!include lib/credit.lua

local hold_key, credits_key, open_key, pending_key, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, now, protocol, coupon, final_ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[6])

local function refuse(code, extra)
  extra.protocol = protocol
  emit(stream, 'credit.commit_refused', protocol, now,
       {id = id, customer = ARGV[7], error = code, coupon = coupon, amount = ARGV[5], status = extra.status})
  return fail(code, extra)
end

local hold = hgetall(hold_key)
if not hold.status or hold.customer ~= ARGV[7] then return refuse('UNKNOWN_CREDIT_HOLD', {}) end
if outside(hold, ARGV[8], ARGV[9]) then return refuse('STORE_NOT_ALLOWED', {}) end
local held = tonumber(hold.amount)
local amount = commit_amount(hold, ARGV[5])

local committed, answer = replay_commit(hold, coupon, amount)
if committed == 'replay' then return answer end
if committed == 'conflict' then return refuse('CREDIT_COMMIT_CONFLICT', {status = hold.status}) end
local parts = cjson.decode(hold.parts)
local recs = load_credits(credits_key, parts)
if not recs then return refuse('UNKNOWN_CREDIT_HOLD', {}) end  -- its credits are gone: nothing to move
if overdue(hold, now) then
  expire_hold(hold, hold_key, parts, recs, credits_key, open_key, pending_key, stream, now, protocol,
              final_ttl, 'commit')
  return expired_now('CREDIT_HOLD_NOT_PENDING', protocol)
end
if hold.status ~= 'PENDING' then return refuse('CREDIT_HOLD_NOT_PENDING', {status = hold.status}) end
if amount > held then return refuse('CREDIT_COMMIT_EXCEEDS_HOLD', {held = held}) end

-- every check passed: write
local release, back = held - amount, {}
for i = #parts, 1, -1 do  -- last-picked first
  local r = math.min(release, parts[i].h)
  back[i], release = r, release - r
  parts[i].k = parts[i].h - r
end
give_back(credits_key, open_key, recs, parts, back)
local debited, shown = {}, {}
for i, p in ipairs(parts) do
  local rec = recs[p.c]
  debited[i] = {credit = rec.id, reference = rec.ref, type = rec.type, held = p.h, amount = p.k,
                released = back[i], remaining = rec.remaining}
  if p.k > 0 then shown[#shown + 1] = {reference = rec.ref, type = rec.type, amount = p.k} end
end
local result = {s = 200, id = id, status = 'COMMITTED', amount = amount, credits = shown, protocol = protocol}
redis.call('HSET', hold_key, 'status', 'COMMITTED', 'committed_amount', amount, 'coupon', coupon,
           'ended_at', now, 'parts', cjson.encode(parts), 'commit_result', cjson.encode(result),
           'history', with_history(hold, 'COMMITTED', now, protocol, amount))
redis.call('ZREM', pending_key, id)
retire_hold(hold_key, final_ttl)
emit(stream, 'credit.committed', protocol, now,
     {id = id, customer = hold.customer, held = held, amount = amount, coupon = coupon,
      order = hold.order, channel = hold.channel, store = hold.store, terminal = hold.terminal,
      parts = debited, answer = result})
return ok(result)
