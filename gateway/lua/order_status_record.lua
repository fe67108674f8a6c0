#!lua
-- order_status_record.lua: keep what processing one order status did (the report a re-post
-- of the same order and status answers again), and append order.status_processed.
--
-- 1. A report for this order and status is kept already (a concurrent or earlier processing
--    recorded first) -> answer that one; nothing else happens.
-- 2. Keep the report (for ARGV[6] seconds) and append the event.
--
-- KEYS[1] the order's processed-status reports hash   KEYS[2] global event stream
-- ARGV[1] now (ms)   ARGV[2] protocol   ARGV[3] order   ARGV[4] status
-- ARGV[5] the report (JSON text)   ARGV[6] how long it is kept (s)
--
-- Returns JSON {ok=true, r={report=<JSON text>, replay=bool}}.
--!include lib/common.lua

local kept = redis.call('HGET', KEYS[1], ARGV[4])
if kept then return ok({report = kept, replay = true}) end
redis.call('HSET', KEYS[1], ARGV[4], ARGV[5])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
emit(KEYS[2], 'order.status_processed', ARGV[2], ARGV[1], {order = ARGV[3], status = ARGV[4], report = ARGV[5]})
return ok({report = ARGV[5]})
