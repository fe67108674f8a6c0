#!lua
-- password_result.lua: close a password check opened by password_attempt.lua, on the customer's
-- keys only (the tag of the customer's shard, and that shard's stream).
--
-- Valid, but the check had gone stale (see password_attempt.lua): the check counted as in
-- progress no longer, so its verdict cannot be trusted to stay within the allowed guesses.
-- PASSWORD_CHECK_TIMEOUT, event password.refused; the caller drops the proof it had stored and
-- the terminal checks again.
-- Valid: the customer's failures reset, on every convênio (the customer proved to know the
-- password); a lock that a parallel guess set meanwhile stays. Event password.verified with
-- when the proof the caller stored (under the convênio's tag, before this call) expires.
-- Invalid: one more failure for the customer; at the maximum the customer is locked, on every
-- convênio, for ARGV[5] ms (event password.locked), otherwise event password.failed with the
-- attempts left, less the customer's other checks still in progress (they may fail too).
-- Either way the check is no longer in progress.
--
-- KEYS[1] the customer's lockout hash (see password_attempt.lua)
-- KEYS[2] the customer's checks in progress (see password_attempt.lua)
-- KEYS[3] the event stream of the customer's shard
-- ARGV[1] "1" valid / "0" invalid   ARGV[2] now (ms)   ARGV[3] protocol
-- ARGV[4] max failures   ARGV[5] lock time (ms)
-- ARGV[6] when the stored proof expires (ms; valid only, else 0)
-- ARGV[7] convênio   ARGV[8] participant (the customer)
--
-- Returns JSON {ok=true, r={valid=true}} or {ok=true, r={valid=false, attempts_left=n}}
-- or {ok=false, code='PASSWORD_CHECK_TIMEOUT', x={retry_after=1}}.
--!include lib/common.lua

local now, protocol = tonumber(ARGV[2]), ARGV[3]
local who = {convenio = ARGV[7], participant = ARGV[8]}
local open_until = redis.call('ZSCORE', KEYS[2], protocol)
local was_open = open_until and tonumber(open_until) > now
redis.call('ZREM', KEYS[2], protocol)
local s = redis.call('HMGET', KEYS[1], 'failures', 'locked_until')
local locked_until = num(s[2])
if ARGV[1] == '1' then
  if not was_open then
    who.error = 'PASSWORD_CHECK_TIMEOUT'
    emit(KEYS[3], 'password.refused', protocol, ARGV[2], who)
    return fail('PASSWORD_CHECK_TIMEOUT', {retry_after = 1})
  end
  if locked_until <= now then redis.call('DEL', KEYS[1]) end
  who.proof_expires_at = tonumber(ARGV[6])
  emit(KEYS[3], 'password.verified', protocol, ARGV[2], who)
  return ok({valid = true})
end
-- a parallel guess locked the customer while this one was being verified: none left
if locked_until > now then
  who.attempts_left = 0
  emit(KEYS[3], 'password.failed', protocol, ARGV[2], who)
  return ok({valid = false, attempts_left = 0})
end
local max_failures = tonumber(ARGV[4])
local failures = num(s[1]) + 1
if failures >= max_failures then
  locked_until = now + tonumber(ARGV[5])
  redis.call('HSET', KEYS[1], 'failures', 0, 'locked_until', locked_until, 'at', now)
  redis.call('PEXPIRE', KEYS[1], ARGV[5])  -- the lock over, nothing of it is left to keep
  who.locked_until = locked_until
  who.answered = 200
  emit(KEYS[3], 'password.locked', protocol, ARGV[2], who)
  return ok({valid = false, attempts_left = 0})
end
redis.call('HSET', KEYS[1], 'failures', failures, 'at', now)
redis.call('PERSIST', KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local left = math.max(0, max_failures - failures - redis.call('ZCARD', KEYS[2]))
who.attempts_left = left
emit(KEYS[3], 'password.failed', protocol, ARGV[2], who)
return ok({valid = false, attempts_left = left})
