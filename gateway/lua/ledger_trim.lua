#!lua
-- ledger_trim.lua: drop a stream's entries that the ledger writers have stored.
--
-- Everything below the group's oldest pending entry (or, with none pending, below its last
-- delivered one) was acknowledged, so it is in Postgres. Read and trim in one script: a
-- writer reading between a separate XPENDING and XINFO would otherwise see its fresh, not
-- yet stored entries trimmed away.
--
-- KEYS[1] event stream   ARGV[1] consumer group
--
-- Returns JSON {ok=true, r={trimmed=n}}.
--!include lib/common.lua

if redis.call('EXISTS', KEYS[1]) == 0 then return ok({trimmed = 0}) end
local last
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local t = {}
  for i = 1, #g, 2 do t[g[i]] = g[i + 1] end
  if t['name'] == ARGV[1] then last = t['last-delivered-id'] end
end
if not last or last == '0-0' then return ok({trimmed = 0}) end
local floor = last
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
if pending[1] > 0 then floor = pending[2] end
return ok({trimmed = redis.call('XTRIM', KEYS[1], 'MINID', floor)})
