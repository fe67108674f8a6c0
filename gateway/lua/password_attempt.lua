-- password_attempt.lua: open one password check. A check in progress counts against the
-- allowed failures BEFORE the (slow) hash is verified, so a burst of parallel guesses cannot
-- exceed them; but it is not a failure: a check whose verdict never comes (its worker died,
-- Redis went away) stops counting once stale, and a right password is never locked out by
-- checks of its own that were merely in flight.
--
-- 1. Unknown convênio / participant -> UNKNOWN_CONVENIO / UNKNOWN_PARTICIPANT; no password
--    set -> PASSWORD_NOT_SET; locked -> PASSWORD_LOCKED with retry_after (s).
-- 2. Failures so far + checks in progress reach the maximum -> PASSWORD_CHECK_BUSY (try again
--    in a moment: those checks end in a lock or a reset).
-- 3. Otherwise the check is registered as in progress until ARGV[7] ms.
--
-- KEYS[1] convênio hash   KEYS[2] participant hash   KEYS[3] event stream
-- KEYS[4] the participant's checks in progress (zset protocol -> stale after, ms)
-- ARGV[1] now (ms)   ARGV[2] max failures   ARGV[3] lock time (ms)   ARGV[4] protocol
-- ARGV[5] convênio   ARGV[6] participant   ARGV[7] a check in progress is stale after (ms)
--
-- A refusal is a decision under its protocol too: event password.refused.
-- Returns JSON {ok=true, r={hash=<argon2 hash>}} or {ok=false, code, x={retry_after?}}.
--!include lib/common.lua

local now, max_failures, lock_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

local function refuse(code, extra)
  emit(KEYS[3], 'password.refused', ARGV[4], ARGV[1],
       {convenio = ARGV[5], participant = ARGV[6], error = code,
        retry_after = extra and extra.retry_after})
  return fail(code, extra)
end

if redis.call('EXISTS', KEYS[1]) == 0 then return refuse('UNKNOWN_CONVENIO') end
local p = redis.call('HMGET', KEYS[2], 'status', 'pw_hash', 'pw_locked_until', 'pw_failures')
if not p[1] then return refuse('UNKNOWN_PARTICIPANT') end
if not p[2] or p[2] == '' then return refuse('PASSWORD_NOT_SET') end
local locked_until = num(p[3])
if locked_until > now then
  return refuse('PASSWORD_LOCKED', {retry_after = math.ceil((locked_until - now) / 1000)})
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
if num(p[4]) + redis.call('ZCARD', KEYS[4]) >= max_failures then
  return refuse('PASSWORD_CHECK_BUSY', {retry_after = 1})
end
local stale_ms = tonumber(ARGV[7])
redis.call('ZADD', KEYS[4], now + stale_ms, ARGV[4])
redis.call('PEXPIRE', KEYS[4], stale_ms)
return ok({hash = p[2]})
