-- lib/empenho.lua: how an empenho moves a convênio's balance, for commit, cancel and expire
-- (included after lib/common.lua and lib/hold.lua, which has the life every hold shares).

-- The hash that holds the balance an empenho draws on: the convênio's pool in shared mode,
-- the participant's own in individual mode (fixed when the hold was placed).
local function pool_key(emp, conv_key, part_key)
  if emp.pool == 'C' then return conv_key end
  return part_key
end

local function push_history(hist_key, status, now, protocol, amount)
  redis.call('RPUSH', hist_key, history_entry(status, tonumber(now), protocol, tonumber(amount)))
end

-- A final empenho stays hot in Redis for a while, then lives on in Postgres.
local function retire(emp_key, hist_key, ttl_s)
  redis.call('EXPIRE', emp_key, ttl_s)
  redis.call('EXPIRE', hist_key, ttl_s)
end

-- Give back to the limit windows (see empenho_hold.lua) what an empenho no longer takes, in the
-- hashes that counted it, while their day or month is still the empenho's.
local function unwind_windows(emp, conv_key, part_key, amount)
  if amount == 0 then return end
  for scope, key in pairs({P = part_key, C = conv_key}) do
    local wd, wm = emp['wd' .. scope], emp['wm' .. scope]
    if wd then
      local h = redis.call('HMGET', key, 'wd', 'wm')
      if h[1] == wd then redis.call('HINCRBY', key, 'wds', -amount) end
      if h[2] == wm then redis.call('HINCRBY', key, 'wms', -amount) end
    end
  end
end

-- Release a PENDING hold whose time ran out. Caller has checked status and time.
-- `trigger` says who found it overdue: the sweeper, or a commit or cancel (whose request then
-- gets EMPENHO_NOT_PENDING under this event's protocol).
local function expire_now(emp, emp_key, hist_key, conv_key, part_key, pending_key, stream,
                          id, now, protocol, final_ttl, trigger)
  local amount = tonumber(emp.amount)
  local pkey = pool_key(emp, conv_key, part_key)
  local reserved = redis.call('HINCRBY', pkey, 'reserved', -amount)
  unwind_windows(emp, conv_key, part_key, amount)
  redis.call('HSET', emp_key, 'status', 'EXPIRED', 'ended_at', now)
  redis.call('ZREM', pending_key, id)
  push_history(hist_key, 'EXPIRED', now, protocol, amount)
  retire(emp_key, hist_key, final_ttl)
  emit(stream, 'empenho.expired', protocol, now,
       {id = id, convenio = emp.convenio, participant = emp.participant, amount = amount,
        hold_protocol = emp.protocol, pool = emp.pool, reserved = reserved,
        balance = num(redis.call('HGET', pkey, 'balance')), terminal = emp.terminal,
        store = emp.store, sale = emp.sale, trigger = trigger})
end
