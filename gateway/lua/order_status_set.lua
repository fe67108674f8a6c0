#!lua
-- order_status_set.lua: set the ERP's order-status parameters: which order
-- statuses commit an order's holds (processamovimento), which cancel them (inativamovimento),
-- and whether processing changes the convênio balance (alterasaldo).
--
-- KEYS[1] order-status parameters hash   KEYS[2] global event stream
-- ARGV[1] now (ms)   ARGV[2] protocol   ARGV[3] commit statuses, comma-separated
-- ARGV[4] cancel statuses, comma-separated   ARGV[5] update balance: "1" or "0"
-- ARGV[6] who set them ("apikey:<id>")
--
-- Returns JSON {ok=true, r={updated_at}}.
--!include lib/common.lua

redis.call('HSET', KEYS[1], 'commit', ARGV[3], 'cancel', ARGV[4], 'update_balance', ARGV[5],
           'updated_at', ARGV[1], 'by', ARGV[6])
emit(KEYS[2], 'order.status_params_set', ARGV[2], ARGV[1],
     {commit = ARGV[3], cancel = ARGV[4], update_balance = ARGV[5], by = ARGV[6]})
return ok({updated_at = tonumber(ARGV[1])})
