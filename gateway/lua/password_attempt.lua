-- password_attempt.lua: open one password check; counts the attempt BEFORE the (slow)
-- hash is verified, so a burst of parallel guesses cannot exceed the allowed failures.
--
-- 1. Unknown convênio / participant -> UNKNOWN_CONVENIO / UNKNOWN_PARTICIPANT; no password
--    set -> PASSWORD_NOT_SET; locked -> PASSWORD_LOCKED with retry_after (s).
-- 2. failures += 1; past the maximum -> lock now, event password.locked, PASSWORD_LOCKED.
--
-- KEYS[1] convênio hash   KEYS[2] participant hash   KEYS[3] event stream
-- ARGV[1] now (ms)   ARGV[2] max failures   ARGV[3] lock time (ms)   ARGV[4] protocol
-- ARGV[5] convênio   ARGV[6] participant
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
local p = redis.call('HMGET', KEYS[2], 'status', 'pw_hash', 'pw_locked_until', 'pw_failures',
                     'convenio', 'participant')
if not p[1] then return refuse('UNKNOWN_PARTICIPANT') end
if not p[2] or p[2] == '' then return refuse('PASSWORD_NOT_SET') end
local locked_until = num(p[3])
if locked_until > now then
  return refuse('PASSWORD_LOCKED', {retry_after = math.ceil((locked_until - now) / 1000)})
end
local failures = num(p[4]) + 1
if failures > max_failures then
  redis.call('HSET', KEYS[2], 'pw_locked_until', now + lock_ms, 'pw_failures', 0)
  emit(KEYS[3], 'password.locked', ARGV[4], ARGV[1],
       {convenio = p[5], participant = p[6], locked_until = now + lock_ms, answered = 423,
        retry_after = math.ceil(lock_ms / 1000)})
  return fail('PASSWORD_LOCKED', {retry_after = math.ceil(lock_ms / 1000)})
end
redis.call('HSET', KEYS[2], 'pw_failures', failures)
return ok({hash = p[2]})
