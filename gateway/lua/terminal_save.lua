#!lua
-- terminal_save.lua: register a store's terminal (a checkout, PDV), or block or unblock it.
--
-- 1. The store must exist (UNKNOWN_STORE).
-- 2. Set the terminal's status; append terminal.saved.
--
-- KEYS[1] store hash   KEYS[2] the store's terminals hash   KEYS[3] global event stream
-- ARGV[1] now (ms)   ARGV[2] protocol   ARGV[3] store code   ARGV[4] terminal code
-- ARGV[5] status: ACTIVE | BLOCKED   ARGV[6] who
--
-- Returns JSON {ok=true, r={store, terminal, status, created=bool}} or {ok=false, code=UNKNOWN_STORE}.
--!include lib/common.lua

if redis.call('EXISTS', KEYS[1]) == 0 then return fail('UNKNOWN_STORE') end

-- every check passed: write
local created = redis.call('HSET', KEYS[2], ARGV[4], ARGV[5]) == 1
emit(KEYS[3], 'terminal.saved', ARGV[2], ARGV[1],
     {store = ARGV[3], terminal = ARGV[4], status = ARGV[5], by = ARGV[6]})
return ok({store = ARGV[3], terminal = ARGV[4], status = ARGV[5], created = created})
