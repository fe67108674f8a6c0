#!lua
-- balance_batch.lua: the month's batches change balances here, through Redis like every sale,
-- so a rollover and a hold at the same instant cannot race (each is one atomic script).
--
-- RESET   (MONTHLY rollover): the balance goes back to the limit (the participant's, or the
--         convênio's total limit for the shared pool) AS OF THE ROLLOVER'S CUTOFF: what was
--         sold (less what was reversed) since 23:30 stays debited, however late the chunk
--         runs. The caller read, from a ledger that held every event up to a moment, each
--         pool's balance then and its net sales since the cutoff; a pool whose balance moved
--         since is left alone and reported `stale`, for the caller to read again and retry.
-- RESTORE (ON_BILLING / ON_SETTLEMENT): the billed amount is given back to the balance.
-- Pending holds are untouched (reserved stays), so they survive the batch.
--
-- One call handles one chunk of the convênio's participants, or its shared pool, and appends
-- ONE event for the chunk (balance.rolled_over or balance.restored) whose items say, per
-- pool, the change and the state after it; a re-run of a batch that died half-way reads
-- those events in the journal to skip the pools already done.
--
-- KEYS[1] convênio hash   KEYS[2] event stream   KEYS[3..] participant hashes (none: the pool)
-- ARGV[1] now (ms)   ARGV[2] protocol   ARGV[3] convênio   ARGV[4] "RESET" | "RESTORE"
-- ARGV[5] batch key (the rollover's date, or the duplicata's id)
-- ARGV[6] policy (MONTHLY | ON_BILLING | ON_SETTLEMENT)
-- ARGV[7..] per pool, in KEYS order, three values: its participant code ('' for the shared
--           pool), then RESET: the balance the ledger showed, the net sales since the cutoff
--           (negative: sales less reversals); RESTORE: the amount to give back, ''
--
-- Returns JSON {ok=true, r={changed=n, missing=[codes], stale=[codes]}} or {ok=false, code}.
--!include lib/common.lua

local conv_key, stream = KEYS[1], KEYS[2]
local now, protocol, convenio, mode, batch, policy = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if mode ~= 'RESET' and mode ~= 'RESTORE' then return fail('INVALID_REQUEST') end

local conv = redis.call('HMGET', conv_key, 'status', 'shared', 'total_limit', 'balance')
if not conv[1] then return fail('UNKNOWN_CONVENIO') end
local shared = conv[2] == '1'
local pools = #KEYS - 2
if shared ~= (pools == 0) then return fail('SHARING_MODE_LOCKED') end
local entries = math.max(pools, 1)
if #ARGV ~= 6 + 3 * entries then return fail('INVALID_REQUEST') end

local function whole(v)
  local n = tonumber(v)
  if not n or n ~= math.floor(n) then return nil end
  return n
end

-- read and check everything before the first write: a script has no rollback
local plan, missing, stale = {}, {}, {}
for i = 1, entries do
  local code, a, b = ARGV[4 + 3 * i], ARGV[5 + 3 * i], ARGV[6 + 3 * i]
  local key, limit, balance
  if shared then
    key, limit, balance = conv_key, num(conv[3]), num(conv[4])
  else
    key = KEYS[2 + i]
    local p = redis.call('HMGET', key, 'limit', 'balance')
    limit, balance = p[1] and tonumber(p[1]), num(p[2])
  end
  if not limit then
    missing[#missing + 1] = code
  elseif mode == 'RESET' then
    local expected, since = whole(a), whole(b)
    if not expected or not since then return fail('INVALID_REQUEST') end
    if balance ~= expected then
      stale[#stale + 1] = code
    else
      plan[#plan + 1] = {key, code, balance, limit + since}
    end
  else
    local amount = whole(a)
    if not amount then return fail('INVALID_REQUEST') end
    plan[#plan + 1] = {key, code, balance, balance + amount}
  end
end

local items = {}
for _, p in ipairs(plan) do
  local key, code, before, after = p[1], p[2], p[3], p[4]
  redis.call('HSET', key, 'balance', after)
  items[#items + 1] = {code, after - before, after, num(redis.call('HGET', key, 'reserved'))}
end

if #items > 0 then
  emit(stream, mode == 'RESET' and 'balance.rolled_over' or 'balance.restored', protocol, now,
       {convenio = convenio, pool = shared and 'C' or 'P', key = batch, policy = policy,
        items = items})
end
return ok({changed = #items, missing = missing, stale = stale})
