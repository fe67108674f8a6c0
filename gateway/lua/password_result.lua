-- password_result.lua: close a password check opened by password_attempt.lua.
--
-- Valid, but the check had gone stale (see password_attempt.lua): no proof; the check counted
-- as in progress no longer, so its verdict cannot be trusted to stay within the allowed
-- guesses. PASSWORD_CHECK_TIMEOUT, event password.refused; the terminal checks again.
-- Valid: failures reset, a single-use proof bound to this convênio and participant is stored
-- (only its digest) until now + ARGV[6] ms, event password.verified.
-- Invalid: one more failure; at the maximum the participant is locked for ARGV[5] ms (event
-- password.locked), otherwise event password.failed with the attempts left, less the other
-- checks still in progress (they may fail too).
-- Either way the check is no longer in progress.
--
-- KEYS[1] participant hash   KEYS[2] proof key (by the proof's digest)   KEYS[3] event stream
-- KEYS[4] the participant's checks in progress (see password_attempt.lua)
-- ARGV[1] "1" valid / "0" invalid   ARGV[2] now (ms)   ARGV[3] protocol
-- ARGV[4] max failures   ARGV[5] lock time (ms)   ARGV[6] proof ttl (ms)
-- ARGV[7] convênio   ARGV[8] participant
--
-- Returns JSON {ok=true, r={valid=true}} or {ok=true, r={valid=false, attempts_left=n}}
-- or {ok=false, code='PASSWORD_CHECK_TIMEOUT', x={retry_after=1}}.
--!include lib/common.lua

local now, protocol = tonumber(ARGV[2]), ARGV[3]
local who = {convenio = ARGV[7], participant = ARGV[8]}
local open_until = redis.call('ZSCORE', KEYS[4], protocol)
local was_open = open_until and tonumber(open_until) > now
redis.call('ZREM', KEYS[4], protocol)
if ARGV[1] == '1' then
  if not was_open then
    who.error = 'PASSWORD_CHECK_TIMEOUT'
    emit(KEYS[3], 'password.refused', protocol, ARGV[2], who)
    return fail('PASSWORD_CHECK_TIMEOUT', {retry_after = 1})
  end
  redis.call('HSET', KEYS[1], 'pw_failures', 0)
  who.proof_expires_at = now + tonumber(ARGV[6])
  redis.call('SET', KEYS[2], ARGV[7] .. '\n' .. ARGV[8] .. '\n' .. who.proof_expires_at,
             'PX', ARGV[6])
  emit(KEYS[3], 'password.verified', protocol, ARGV[2], who)
  return ok({valid = true})
end
local p = redis.call('HMGET', KEYS[1], 'pw_failures', 'pw_locked_until')
-- a parallel guess locked the participant while this one was being verified: none left
if num(p[2]) > now then
  who.attempts_left = 0
  emit(KEYS[3], 'password.failed', protocol, ARGV[2], who)
  return ok({valid = false, attempts_left = 0})
end
local max_failures = tonumber(ARGV[4])
local failures = num(p[1]) + 1
if failures >= max_failures then
  redis.call('HSET', KEYS[1], 'pw_locked_until', now + tonumber(ARGV[5]), 'pw_failures', 0)
  who.locked_until = now + tonumber(ARGV[5])
  who.answered = 200
  emit(KEYS[3], 'password.locked', protocol, ARGV[2], who)
  return ok({valid = false, attempts_left = 0})
end
redis.call('HSET', KEYS[1], 'pw_failures', failures)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local left = math.max(0, max_failures - failures - redis.call('ZCARD', KEYS[4]))
who.attempts_left = left
emit(KEYS[3], 'password.failed', protocol, ARGV[2], who)
return ok({valid = false, attempts_left = left})
