"""A strict variant of a script: every key it touches must be one it declared in KEYS.

On a Redis Cluster a script runs on the node that owns its declared KEYS' slot and may touch
only keys it declared (a key it names some other way may live on another node, and Redis
refuses it there, or worse, finds it missing); a single Redis server checks nothing of the
kind, so a script that builds a key name or reads one from a hash works in every test against
one server and fails only on a cluster. `instrument` closes that gap: it shadows `redis` in
the script with a local whose `call` and `pcall` first check every key argument against KEYS
and raise `undeclared key <key> in <COMMAND>` for any other. A command this module does not
know the key positions of raises too (`keycheck does not know ...`), so a script that starts
using a new command fails until the command is added to the tables below.

The check is Lua of one line, put in front of the script's second line (its header comment
starts there), so the script's line numbers are unchanged; locals only, because Redis 7
refuses to create globals. Scripts.__init__ instruments every script when the environment has
CONVENIO_LUA_KEYCHECK=1 (tests/test_lua_keys.py runs a checkout that way).
"""

from __future__ import annotations

#: every argument after the command name is a key
ALL_KEYS = frozenset({"DEL", "UNLINK", "EXISTS", "MGET", "TOUCH"})
#: no argument is a key
KEYLESS = frozenset({"TIME", "PING", "ECHO"})
#: the first argument after the command name is the key (and no other argument is one)
FIRST_KEY = frozenset(
    {
        # strings and keys
        "GET", "SET", "SETNX", "GETDEL", "INCR", "INCRBY", "DECR", "DECRBY", "STRLEN", "TYPE",
        "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "PERSIST", "TTL", "PTTL",
        # hashes
        "HDEL", "HEXISTS", "HGET", "HGETALL", "HINCRBY", "HINCRBYFLOAT", "HKEYS", "HLEN", "HMGET",
        "HSET", "HSETNX", "HVALS",
        # lists
        "RPUSH", "LPUSH", "LPOP", "RPOP", "LLEN", "LRANGE", "LINDEX", "LTRIM",
        # sets
        "SADD", "SCARD", "SISMEMBER", "SMEMBERS", "SREM",
        # sorted sets
        "ZADD", "ZCARD", "ZCOUNT", "ZINCRBY", "ZRANGE", "ZRANGEBYSCORE", "ZRANK", "ZREM",
        "ZREMRANGEBYSCORE", "ZSCORE",
        # streams
        "XACK", "XADD", "XAUTOCLAIM", "XCLAIM", "XDEL", "XLEN", "XPENDING", "XRANGE", "XTRIM",
    }
)  # fmt: skip
#: the key comes second, after a subcommand (XINFO GROUPS key, XINFO STREAM key ...)
SECOND_KEY = frozenset({"XINFO"})


def _set(names: frozenset[str]) -> str:
    return "{" + ", ".join(f"{n} = true" for n in sorted(names)) + "}"


#: the check, as Lua statements; joined into one line, so no `--` comments and no line breaks
#: inside a string. `error(..., 3)` blames the script's line that called redis.call/pcall.
_LUA = f"""
local __kc_real = redis;
local __kc_declared = {{}};
for _, k in ipairs(KEYS) do __kc_declared[k] = true end;
local __kc_all, __kc_none, __kc_first, __kc_second =
  {_set(ALL_KEYS)}, {_set(KEYLESS)}, {_set(FIRST_KEY)}, {_set(SECOND_KEY)};
local function __kc_check(cmd, ...)
  local name = string.upper(tostring(cmd));
  local n, from, to = select('#', ...), 1, 1;
  if __kc_none[name] then return end;
  if __kc_all[name] then to = n
  elseif __kc_second[name] then from, to = 2, 2
  elseif not __kc_first[name] then
    error('keycheck does not know the keys of ' .. name .. ' (gateway/platform/redis/keycheck.py)', 3)
  end;
  local args = {{...}};
  for i = from, math.min(to, n) do
    local k = args[i];
    if not __kc_declared[k] then error('undeclared key ' .. tostring(k) .. ' in ' .. name, 3) end
  end
end;
local redis = setmetatable({{
  call = function(cmd, ...) __kc_check(cmd, ...); return __kc_real.call(cmd, ...) end,
  pcall = function(cmd, ...) __kc_check(cmd, ...); return __kc_real.pcall(cmd, ...) end,
}}, {{__index = __kc_real}});
"""
PRELUDE = " ".join(line.strip() for line in _LUA.strip().splitlines())


def instrument(text: str) -> str:
    """The script `text` (includes inlined, first line `#!lua`) with the key check in front of
    its second line, so its line numbers stay those of the file."""
    shebang, newline, rest = text.partition("\n")
    if not shebang.startswith("#!lua"):
        raise ValueError("a script starts with its shebang line, #!lua")
    return f"{shebang}\n{PRELUDE} {rest}"
