#!lua
-- participant_save.lua: add a participant to a convênio, or update some of its fields.
--
-- 1. The convênio must exist (UNKNOWN_CONVENIO); create: the participant must be new
--    (PARTICIPANT_EXISTS); update: it must exist (UNKNOWN_PARTICIPANT).
-- 2. Individual mode: the participants' limits may not add up to more than the convênio's
--    total limit (LIMIT_ALLOCATION_EXCEEDED).
-- 3. The balance starts equal to the limit; a limit change moves it by the same difference.
--    A new password hash resets the failure count and any lock.
-- 4. A document arrives only as doc_digest, doc_sealed and doc_masked (never in clear); an
--    empty value removes the field (no document), and any legacy clear `document` goes.
--    pw_hash "" (a privacy erasure) removes the password: no password set any more.
-- 5. Append participant.created / participant.updated (the password hash is carried only
--    when it changed, so Postgres can rebuild Redis; never a password).
--
-- KEYS[1] convênio hash   KEYS[2] participant hash   KEYS[3] convênio's member set
-- KEYS[4] event stream
-- ARGV[1] "create" | "update"   ARGV[2] now (ms)   ARGV[3] protocol
-- ARGV[4] convênio code   ARGV[5] participant code
-- ARGV[6] JSON object of the fields given, every value a string: name, doc_digest,
--         doc_sealed, doc_masked, limit, status, pw_hash, w_order, w_day, w_month
-- ARGV[7] who (the API key id, or an operator)   ARGV[8] why (free text)
--
-- Returns JSON {ok=true, r=<record without password fields, with both codes>} or {ok=false, code, x}.
--!include lib/common.lua

local conv_key, key, members_key, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local create, now, protocol = ARGV[1] == 'create', ARGV[2], ARGV[3]
local convenio, participant = ARGV[4], ARGV[5]
local f = cjson.decode(ARGV[6])
local by, reason = ARGV[7] or '', ARGV[8] or ''  -- who and why, for the history

local conv = redis.call('HMGET', conv_key, 'status', 'shared', 'total_limit', 'allocated')
if not conv[1] then return fail('UNKNOWN_CONVENIO') end
local exists = redis.call('EXISTS', key) == 1
if create and exists then return fail('PARTICIPANT_EXISTS') end
if not create and not exists then return fail('UNKNOWN_PARTICIPANT') end

local old_limit = num(redis.call('HGET', key, 'limit'))
local old_status = redis.call('HGET', key, 'status') or ''

local limit = old_limit
if f.limit then limit = tonumber(f.limit) end
local diff = limit - old_limit
local individual = conv[2] ~= '1'
if individual and diff > 0 and num(conv[4]) + diff > num(conv[3]) then
  return fail('LIMIT_ALLOCATION_EXCEEDED',
              {total_limit = num(conv[3]), allocated = num(conv[4]),
               unallocated = num(conv[3]) - num(conv[4])})
end

-- every check passed: write
local pw_hash = f.pw_hash
f.pw_hash = nil
local pw_cleared = pw_hash == ''
if pw_cleared then pw_hash = nil end
for _, name in ipairs({'doc_digest', 'doc_sealed', 'doc_masked'}) do
  if f[name] == '' then
    f[name] = nil
    redis.call('HDEL', key, name)
  end
end
redis.call('HDEL', key, 'document')
hset_table(key, f)
if create then
  -- the codes live in the key's name only: a million participants, 40 bytes each saved
  redis.call('HSET', key, 'limit', limit, 'balance', limit, 'reserved', 0, 'created_at', now)
  if not f.status then redis.call('HSET', key, 'status', 'ACTIVE') end
  redis.call('SADD', members_key, participant)
elseif diff ~= 0 then
  redis.call('HINCRBY', key, 'balance', diff)
end
local allocated = num(conv[4])
if individual and diff ~= 0 then allocated = redis.call('HINCRBY', conv_key, 'allocated', diff) end
if pw_hash then
  redis.call('HSET', key, 'pw_hash', pw_hash, 'pw_failures', 0, 'pw_locked_until', 0,
             'pw_changed_at', now)
elseif pw_cleared then
  redis.call('HDEL', key, 'pw_hash', 'pw_changed_at')
  redis.call('HSET', key, 'pw_failures', 0, 'pw_locked_until', 0)
end
redis.call('HSET', key, 'updated_at', now)

local record = hgetall(key)
record.pw_hash, record.pw_failures, record.pw_locked_until = nil, nil, nil
record.convenio, record.participant = convenio, participant
local changed = f
changed.password_changed = pw_hash ~= nil or pw_cleared
emit(stream, create and 'participant.created' or 'participant.updated', protocol, now,
     {convenio = convenio, participant = participant, record = record, changed = changed,
      previous_limit = old_limit, pw_hash = pw_hash, convenio_allocated = allocated,
      previous_status = old_status, by = by, reason = reason, pw_cleared = pw_cleared})
return ok(record)
