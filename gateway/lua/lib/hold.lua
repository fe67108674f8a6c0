-- lib/hold.lua: the life of a hold, written once for both kinds: an empenho on a convênio's
-- balance (empenho_hold, empenho_commit, empenho_cancel, empenho_expire) and a credit hold on a
-- customer's credits (credit_hold, credit_commit, credit_cancel, credit_expire). Included after
-- lib/common.lua.
--
-- A hold is a hash with at least: status (PENDING, then COMMITTED, CANCELLED, EXPIRED or, after a
-- commit, REVERSED), expires_at (ms), and once final the answer it gave (commit_result for a
-- commit, cancel_result for a cancel or reversal) with what that answer was for (coupon,
-- committed_amount). The caller supplies what differs: which hashes move money, and how.

-- Placing a hold under an Idempotency-Key: the answer already given under that key replays for the
-- same request and is IDEMPOTENCY_CONFLICT for another. nil: the key is new, decide.
local function replay_answer(idem_key, fingerprint)
  local stored = redis.call('GET', idem_key)
  if not stored then return nil end
  local rec = cjson.decode(stored)
  if rec.fp ~= fingerprint then return fail('IDEMPOTENCY_CONFLICT') end
  rec.r.replay = true
  return ok(rec.r)
end

-- A decision on placing a hold, approved or declined: keep its answer under the Idempotency-Key
-- (a decline is a decision too, replayed like an approval) and append its event, which carries
-- the request and the answer.
-- The answer is encoded once, for the record, the event and the reply (the fingerprint is hex).
local function decide(idem_key, idem_ttl, fingerprint, stream, etype, protocol, now, request, result)
  result.protocol = protocol
  local answer = cjson.encode(result)
  redis.call('SET', idem_key, '{"fp":"' .. fingerprint .. '","r":' .. answer .. '}', 'EX', idem_ttl)
  emit_answered(stream, etype, protocol, now, request, answer)
  return ok_encoded(answer)
end

-- One entry of a hold's status history, written out rather than by cjson (which costs more
-- than the RPUSH): `status` is one of ours, `at` and `amount` (nil: none) are numbers or digits,
-- the protocol one of our ids.
local function history_entry(status, at, protocol, amount)
  local entry = '{"status":"' .. status .. '","at":' .. at .. ',"protocol":"' .. protocol .. '"'
  if amount then entry = entry .. ',"amount":' .. amount end
  return entry .. '}'
end

-- The amount a commit asks for: ARGV's text, or '' for the whole hold.
local function commit_amount(hold, asked)
  if asked ~= '' then return tonumber(asked) end
  return tonumber(hold.amount)
end

-- A commit of a hold already COMMITTED: the same coupon and amount replay the first answer
-- ('replay', json); anything else is a conflict ('conflict'). nil: not committed yet.
local function replay_commit(hold, coupon, amount)
  if hold.status ~= 'COMMITTED' then return nil end
  if hold.coupon == coupon and tonumber(hold.committed_amount) == amount then
    local r = cjson.decode(hold.commit_result)
    r.replay = true
    return 'replay', ok(r)
  end
  return 'conflict'
end

-- A cancel of a hold already CANCELLED or REVERSED replays the first answer; nil otherwise.
local function replay_cancel(hold)
  if hold.status ~= 'CANCELLED' and hold.status ~= 'REVERSED' then return nil end
  local r = cjson.decode(hold.cancel_result)
  r.replay = true
  return ok(r)
end

-- A PENDING hold past its time: whoever touches it first (the sweeper, a commit, a cancel)
-- expires it, and a commit or cancel is then refused as not pending.
local function overdue(hold, now)
  return hold.status == 'PENDING' and tonumber(hold.expires_at) <= tonumber(now)
end

-- The refusal of a commit or cancel that found its hold overdue and expired it, under the
-- expiry's protocol (the expiry's event records the refusal).
local function expired_now(not_pending_code, protocol)
  return fail(not_pending_code, {status = 'EXPIRED', protocol = protocol})
end

-- The sweeper's guard: a hold gone or no longer PENDING leaves the expiry index and nothing else
-- happens; one not yet due is left alone. Returns the answer to give, or nil: expire it now.
local function sweep_guard(hold, pending_key, id, now)
  if hold.status ~= 'PENDING' then
    redis.call('ZREM', pending_key, id)
    return ok({expired = false})
  end
  if tonumber(hold.expires_at) > tonumber(now) then return ok({expired = false}) end
  return nil
end

-- A store-scoped API key acts on holds placed at its store (and terminal) only: true when this
-- hold was placed elsewhere. `store` "" is an unscoped key: it may act on any.
local function outside(hold, store, terminal)
  if store == '' then return false end
  return hold.store ~= store or (terminal ~= '' and hold.terminal ~= terminal)
end
