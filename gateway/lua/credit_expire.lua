#!lua
-- credit_expire.lua: release a PENDING credit hold whose time ran out (called by the sweeper,
-- gateway/holds/sweeper.py): every part goes back to its credit.
--
-- 1. Gone or no longer PENDING -> drop it from the expiry index, nothing else.
-- 2. Not yet due -> nothing.
-- 3. Due -> each part back to its credit, status EXPIRED, append credit.expired.
--
-- KEYS[1] credit hold hash   KEYS[2] customer's credits hash   KEYS[3] customer's open-credits set
-- KEYS[4] shard's pending credit holds zset   KEYS[5] shard's event stream
-- ARGV[1] hold id   ARGV[2] now (ms)   ARGV[3] protocol   ARGV[4] ttl (s) of a final hold in Redis
--
-- Returns JSON {ok=true, r={expired=bool}}.
--!include lib/common.lua
--!include lib/hold.lua
--!include lib/credit.lua

local hold_key, credits_key, open_key, pending_key, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, now, protocol = ARGV[1], ARGV[2], ARGV[3]

local hold = hgetall(hold_key)
local untouched = sweep_guard(hold, pending_key, id, now)
if untouched then return untouched end
local parts = cjson.decode(hold.parts)
local recs = load_credits(credits_key, parts)
if not recs then return ok({expired = false}) end
expire_hold(hold, hold_key, parts, recs, credits_key, open_key, pending_key, stream, now, protocol,
            tonumber(ARGV[4]), 'sweeper')
return ok({expired = true})
