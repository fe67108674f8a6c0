#!lua
-- empenho_expire.lua: release a PENDING empenho whose time ran out (called by the sweeper).
--
-- 1. Gone or no longer PENDING -> drop it from the expiry index, nothing else.
-- 2. Not yet due -> nothing.
-- 3. Due -> reserved -= held, status EXPIRED, append empenho.expired.
--
-- KEYS[1] empenho hash   KEYS[2] empenho history   KEYS[3] convênio hash
-- KEYS[4] participant hash   KEYS[5] pending zset   KEYS[6] event stream
-- ARGV[1] empenho id   ARGV[2] now (ms)   ARGV[3] protocol
-- ARGV[4] ttl (s) of a final empenho in Redis
--
-- Returns JSON {ok=true, r={expired=bool}}.
--!include lib/common.lua
--!include lib/hold.lua
--!include lib/empenho.lua

local emp_key, hist_key, conv_key, part_key, pending_key, stream =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id, now, protocol = ARGV[1], ARGV[2], ARGV[3]

local emp = hgetall(emp_key)
local untouched = sweep_guard(emp, pending_key, id, now)
if untouched then return untouched end
expire_now(emp, emp_key, hist_key, conv_key, part_key, pending_key, stream, id, now,
           protocol, tonumber(ARGV[4]), 'sweeper')
return ok({expired = true})
