#!lua
-- password_attempt.lua: open one password check. Failures count per customer (the participant
-- code), across all the convênios the customer takes part in: this script touches only the
-- customer's keys, under the tag of the customer's shard, and appends to that shard's stream.
-- The convênio and the participant (their existence, the password hash, when it was last set)
-- live under the convênio's tag: the caller reads them first and passes what it found.
--
-- A check in progress counts against the allowed failures BEFORE the (slow) hash is verified,
-- so a burst of parallel guesses, on one convênio or spread over several, cannot exceed them;
-- but it is not a failure: a check whose verdict never comes (its worker died, Redis went away)
-- stops counting once stale, and a right password is never locked out by checks of its own
-- that were merely in flight.
--
-- 1. What the caller found refuses the check (ARGV[7]: UNKNOWN_CONVENIO, UNKNOWN_PARTICIPANT,
--    PASSWORD_NOT_SET) -> that code.
-- 2. The password was set (by the back office) after the customer's last failure: those
--    failures and any lock are forgotten, as a new password has always lifted them.
-- 3. Locked -> PASSWORD_LOCKED with retry_after (s), whichever convênio the check names.
-- 4. Failures so far + checks in progress reach the maximum -> PASSWORD_CHECK_BUSY (try again
--    in a moment: those checks end in a lock or a reset).
-- 5. Otherwise the check is registered as in progress until now + ARGV[6] ms.
--
-- KEYS[1] the customer's lockout hash (failures, locked_until ms, at ms: the last failure)
-- KEYS[2] the customer's checks in progress (zset protocol -> stale after, ms)
-- KEYS[3] the event stream of the customer's shard
-- ARGV[1] now (ms)   ARGV[2] max failures   ARGV[3] protocol
-- ARGV[4] convênio   ARGV[5] participant (the customer)
-- ARGV[6] a check in progress is stale after (ms)
-- ARGV[7] the refusal the caller's read found, or ""
-- ARGV[8] when this participant's password was last set (ms, 0 when never)
--
-- A refusal is a decision under its protocol too: event password.refused.
-- Returns JSON {ok=true, r={}} or {ok=false, code, x={retry_after?}}.
--!include lib/common.lua

local now, max_failures = tonumber(ARGV[1]), tonumber(ARGV[2])

local function refuse(code, extra)
  emit(KEYS[3], 'password.refused', ARGV[3], ARGV[1],
       {convenio = ARGV[4], participant = ARGV[5], error = code,
        retry_after = extra and extra.retry_after})
  return fail(code, extra)
end

if ARGV[7] == 'UNKNOWN_CONVENIO' then return refuse('UNKNOWN_CONVENIO') end
if ARGV[7] == 'UNKNOWN_PARTICIPANT' then return refuse('UNKNOWN_PARTICIPANT') end
if ARGV[7] == 'PASSWORD_NOT_SET' then return refuse('PASSWORD_NOT_SET') end
local s = redis.call('HMGET', KEYS[1], 'failures', 'locked_until', 'at')
local failures, locked_until = num(s[1]), num(s[2])
if num(s[3]) > 0 and num(ARGV[8]) > num(s[3]) then
  failures, locked_until = 0, 0
end
if locked_until > now then
  return refuse('PASSWORD_LOCKED', {retry_after = math.ceil((locked_until - now) / 1000)})
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if failures + redis.call('ZCARD', KEYS[2]) >= max_failures then
  return refuse('PASSWORD_CHECK_BUSY', {retry_after = 1})
end
-- every check passed: write
if failures == 0 then redis.call('DEL', KEYS[1]) end
local stale_ms = tonumber(ARGV[6])
redis.call('ZADD', KEYS[2], now + stale_ms, ARGV[3])
redis.call('PEXPIRE', KEYS[2], stale_ms)
return ok({})
