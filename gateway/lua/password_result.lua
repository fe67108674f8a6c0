-- password_result.lua: close a password check opened by password_attempt.lua.
--
-- Valid: failures reset, a single-use proof bound to this convênio and participant is stored
-- (only its digest) until now + ARGV[6] ms, event password.verified.
-- Invalid: the attempt already counted; at the maximum the participant is locked for
-- ARGV[5] ms (event password.locked), otherwise event password.failed.
--
-- KEYS[1] participant hash   KEYS[2] proof key (by the proof's digest)   KEYS[3] event stream
-- ARGV[1] "1" valid / "0" invalid   ARGV[2] now (ms)   ARGV[3] protocol
-- ARGV[4] max failures   ARGV[5] lock time (ms)   ARGV[6] proof ttl (ms)
-- ARGV[7] convênio   ARGV[8] participant
--
-- Returns JSON {ok=true, r={valid=true}} or {ok=true, r={valid=false, attempts_left=n}}.
--!include lib/common.lua

local now, protocol = tonumber(ARGV[2]), ARGV[3]
local who = {convenio = ARGV[7], participant = ARGV[8]}
if ARGV[1] == '1' then
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
local failures = num(p[1])
local left = tonumber(ARGV[4]) - failures
if left <= 0 then
  redis.call('HSET', KEYS[1], 'pw_locked_until', now + tonumber(ARGV[5]), 'pw_failures', 0)
  who.locked_until = now + tonumber(ARGV[5])
  who.answered = 200
  emit(KEYS[3], 'password.locked', protocol, ARGV[2], who)
  return ok({valid = false, attempts_left = 0})
end
who.attempts_left = left
emit(KEYS[3], 'password.failed', protocol, ARGV[2], who)
return ok({valid = false, attempts_left = left})
