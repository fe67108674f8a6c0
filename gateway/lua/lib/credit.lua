-- lib/credit.lua: how a credit hold moves a customer's credits, for credit_hold, credit_commit,
-- credit_cancel and credit_expire (included after lib/common.lua and lib/hold.lua, which has
-- the life every hold shares).
--
-- A customer's credits are one hash (credit id -> JSON record) and a set of the ids that
-- still have something remaining. A credit hold is a hash whose `parts` field is the JSON list
-- of what it took, in the order it was taken: {c = credit id, h = held, k = committed}.
-- Every function that writes is called only after the caller's last check: the records are
-- read and decoded first (load_credits), then changed (put_credit).

-- The credit records of the hold's parts, decoded before any write; nil when one is missing.
local function load_credits(credits_key, parts)
  local ids = {}
  for i, p in ipairs(parts) do ids[i] = p.c end
  local raw = redis.call('HMGET', credits_key, unpack(ids))
  local recs = {}
  for i, r in ipairs(raw) do
    if not r then return nil end
    recs[ids[i]] = cjson.decode(r)
  end
  return recs
end

-- Store a credit's record after its remaining changed; keep the open set in step.
local function put_credit(credits_key, open_key, rec)
  redis.call('HSET', credits_key, rec.id, cjson.encode(rec))
  if rec.remaining > 0 then
    redis.call('SADD', open_key, rec.id)
  else
    redis.call('SREM', open_key, rec.id)
  end
end

-- Give `amounts[i]` back to the credit of parts[i] (nothing for a zero); returns the event's
-- and the answer's lists of what went back where. Given `now` (ms), a credit that has expired
-- by then is marked `expired`: it gets its share back and stays expired.
local function give_back(credits_key, open_key, recs, parts, amounts, now)
  local moved, shown = {}, {}
  for i, p in ipairs(parts) do
    local amount = amounts[i]
    if amount > 0 then
      local rec = recs[p.c]
      rec.remaining = rec.remaining + amount
      put_credit(credits_key, open_key, rec)
      local m = {credit = rec.id, reference = rec.ref, type = rec.type, amount = amount,
                 remaining = rec.remaining, part = i}
      local s = {reference = rec.ref, type = rec.type, amount = amount}
      if now and rec.expires_at ~= 0 and rec.expires_at <= now then m.expired, s.expired = true, true end
      moved[#moved + 1] = m
      shown[#shown + 1] = s
    end
  end
  return moved, shown
end

-- The hold's status history with one more entry (JSON text).
local function with_history(hold, status, now, protocol, amount)
  local history = cjson.decode(hold.history or '[]')
  history[#history + 1] = {status = status, at = tonumber(now), protocol = protocol, amount = amount}
  return cjson.encode(history)
end

-- A final hold stays hot in Redis for a while, then lives on in Postgres.
local function retire_hold(hold_key, ttl_s)
  redis.call('EXPIRE', hold_key, ttl_s)
end

-- Release a PENDING hold whose time ran out: every part goes back to its credit. The caller
-- has checked status and time and decoded `recs`. `trigger`: sweeper, commit or cancel.
local function expire_hold(hold, hold_key, parts, recs, credits_key, open_key, pending_key, stream,
                           now, protocol, final_ttl, trigger)
  local amounts = {}
  for i, p in ipairs(parts) do amounts[i] = p.h end
  local moved = give_back(credits_key, open_key, recs, parts, amounts)
  local amount = tonumber(hold.amount)
  redis.call('HSET', hold_key, 'status', 'EXPIRED', 'ended_at', now,
             'history', with_history(hold, 'EXPIRED', now, protocol, amount))
  redis.call('ZREM', pending_key, hold.id)
  retire_hold(hold_key, final_ttl)
  emit(stream, 'credit.expired', protocol, now,
       {id = hold.id, customer = hold.customer, amount = amount, order = hold.order,
        hold_protocol = hold.protocol, parts = moved, trigger = trigger})
end
