#!lua
-- hold_restore.lua: put a final hold Redis has forgotten back from the ledger's record, so that
-- the script acting on it next (a cancel, reversing what is left of a sale) decides against it.
-- Only when Redis holds no record: one another call put back meanwhile, or changed since, is
-- the one that counts. Moves no money and appends no event: the record is the ledger's already.
--
-- KEYS[1] the hold's hash   KEYS[2] its history list (an empenho's; a credit hold keeps its
--                           history in the hash and passes KEYS[1] again)
-- ARGV[1] the record's fields (JSON object)   ARGV[2] the history entries (JSON list of JSON texts)
-- ARGV[3] ttl (s) of a final hold in Redis
--
-- Returns JSON {ok=true, r={restored=bool}}.
--!include lib/common.lua

local hold_key, hist_key = KEYS[1], KEYS[2]
if redis.call('EXISTS', hold_key) == 1 then return ok({restored = false}) end
local fields, history = cjson.decode(ARGV[1]), cjson.decode(ARGV[2])

-- every check passed: write
hset_table(hold_key, fields)
redis.call('EXPIRE', hold_key, tonumber(ARGV[3]))
if hist_key ~= hold_key and #history > 0 then
  redis.call('DEL', hist_key)
  redis.call('RPUSH', hist_key, unpack(history))
  redis.call('EXPIRE', hist_key, tonumber(ARGV[3]))
end
return ok({restored = true})
