-- balance_batch.lua: the month's batches change balances here, through Redis like every sale,
-- so a rollover and a hold at the same instant cannot race (each is one atomic script).
--
-- RESET   (MONTHLY rollover): the balance goes back to the limit (the participant's, or the
--         convênio's total limit for the shared pool).
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
-- ARGV[7..] per pool, in KEYS order: its participant code ('' for the shared pool), then the
--           amount to give back ('' for RESET)
--
-- Returns JSON {ok=true, r={changed=<pools>, missing=[codes]}} or {ok=false, code}.
--!include lib/common.lua

local conv_key, stream = KEYS[1], KEYS[2]
local now, protocol, convenio, mode, batch, policy = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if mode ~= 'RESET' and mode ~= 'RESTORE' then return fail('INVALID_REQUEST') end

local conv = redis.call('HMGET', conv_key, 'status', 'shared', 'total_limit')
if not conv[1] then return fail('UNKNOWN_CONVENIO') end
local shared = conv[2] == '1'
local pools = #KEYS - 2
if shared ~= (pools == 0) then return fail('SHARING_MODE_LOCKED') end

-- check every amount before the first write: a script has no rollback
local amounts = {}
for i = 1, math.max(pools, 1) do
  local raw = ARGV[6 + 2 * i]
  if mode == 'RESTORE' then
    amounts[i] = tonumber(raw)
    if not amounts[i] or amounts[i] ~= math.floor(amounts[i]) then return fail('INVALID_REQUEST') end
  end
end

local items, missing = {}, {}
local function change(key, code, limit, i)
  local before = num(redis.call('HGET', key, 'balance'))
  local after
  if mode == 'RESET' then
    after = limit
    redis.call('HSET', key, 'balance', after)
  else
    after = redis.call('HINCRBY', key, 'balance', amounts[i])
  end
  items[#items + 1] = {code, after - before, after, num(redis.call('HGET', key, 'reserved'))}
end

if shared then
  change(conv_key, '', num(conv[3]), 1)
else
  for i = 1, pools do
    local key, code = KEYS[2 + i], ARGV[5 + 2 * i]
    local limit = redis.call('HGET', key, 'limit')
    if limit then change(key, code, tonumber(limit), i) else missing[#missing + 1] = code end
  end
end

if #items > 0 then
  emit(stream, mode == 'RESET' and 'balance.rolled_over' or 'balance.restored', protocol, now,
       {convenio = convenio, pool = shared and 'C' or 'P', key = batch, policy = policy,
        items = items})
end
return ok({changed = #items, missing = missing})
