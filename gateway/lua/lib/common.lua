-- lib/common.lua: helpers included (by gateway/platform/redis/scripts.py) at the top of every script.
-- Every script checks everything before its first write: Lua in Redis has no rollback.

-- A missing hash field comes back as false; treat it as zero.
local function num(v)
  if not v then return 0 end
  return tonumber(v) or 0
end

-- HGETALL's flat reply as a table (empty table when the key does not exist).
local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- HSET every field of a table of strings (nothing when it is empty).
local function hset_table(key, fields)
  local flat = {}
  for name, value in pairs(fields) do
    flat[#flat + 1] = name
    flat[#flat + 1] = value
  end
  if #flat > 0 then redis.call('HSET', key, unpack(flat)) end
end

-- Append the event that describes this script's change to the shard's stream.
-- Its protocol is the event's unique id in the ledger.
local function emit(stream, etype, protocol, now, data)
  redis.call('XADD', stream, '*', 'type', etype, 'protocol', protocol, 'at', now,
             'data', cjson.encode(data))
end

-- The same with the answer already encoded (`answer`, a JSON object) spliced in as its
-- `answer` field: a script that also stores its answer encodes it once (cjson is most of a
-- script's own time). `data` must not be empty.
local function emit_answered(stream, etype, protocol, now, data, answer)
  local event = cjson.encode(data)
  redis.call('XADD', stream, '*', 'type', etype, 'protocol', protocol, 'at', now,
             'data', string.sub(event, 1, -2) .. ',"answer":' .. answer .. '}')
end

local function ok(result)
  return cjson.encode({ok = true, r = result})
end

-- ok() of an answer already encoded
local function ok_encoded(answer)
  return '{"ok":true,"r":' .. answer .. '}'
end

local function fail(code, extra)
  return cjson.encode({ok = false, code = code, x = extra or {}})
end
