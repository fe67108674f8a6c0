"""Loads the Lua scripts beside this module and runs them by SHA.

A script may include shared fragments with a line `--!include lib/name.lua`; they are inlined
here, once, so every script is still a single self-contained EVALSHA. Calls go through the
pipelining client in gateway/resp.py, which reloads a script when Redis answers NOSCRIPT
(after a restart or SCRIPT FLUSH).

Every script starts with `#!lua` (Redis 7's shebang), so Redis knows its flags (none: a script
that writes, refused under OOM and on replicas) instead of guessing them; on a Redis Cluster a
shebang script must touch only keys of its declared KEYS' slot. One server does not enforce that,
which is why every key a script names comes from KEYS. Every script's header comment declares its
`KEYS[i]` and `ARGV[i]` one by one, `KEYS[n..]` / `ARGV[n..]` for a variable tail. Redis checks
neither count, so `signature` reads them back from the header: a test holds every caller's keys
and arguments to it. With CONVENIO_LUA_KEYCHECK=1 in the environment every script is loaded
strict (gateway/platform/redis/keycheck.py): touching a key not in its KEYS raises an error.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis, RedisCluster

from gateway.platform import metrics
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.redis import keycheck
from gateway.platform.redis.cluster import ClusterResp
from gateway.platform.redis.resp import Resp

LUA_DIR = Path(__file__).resolve().parents[2] / "lua"
_INCLUDE = re.compile(r"^--!include (\S+)$", re.MULTILINE)


def source(name: str) -> str:
    """A script's text with its includes inlined."""
    text = (LUA_DIR / f"{name}.lua").read_text(encoding="utf-8")
    return _INCLUDE.sub(lambda m: (LUA_DIR / m.group(1)).read_text(encoding="utf-8"), text)


def names() -> list[str]:
    """Every script, by name (its file name without `.lua`)."""
    return sorted(p.stem for p in LUA_DIR.glob("*.lua"))


_DECLARED = re.compile(r"\b(KEYS|ARGV)\[(\d+)(\.\.)?\]")


@dataclass(frozen=True)
class Signature:
    """How many KEYS and ARGV a script's header declares; with `more_keys` / `more_args` (a
    `KEYS[n..]` / `ARGV[n..]` line) that many at least, then any number more."""

    keys: int
    args: int
    more_keys: bool = False
    more_args: bool = False


def header(text: str) -> str:
    """A script's opening comment block: its lines up to the first line of code."""
    lines = []
    for line in text.splitlines():
        if line.startswith("#!"):  # the shebang: `#!lua`, and its flags
            continue
        if not line.startswith("--"):
            break
        lines.append(line)
    return "\n".join(lines)


def parse_signature(text: str) -> Signature:
    """The signature a script's text declares in its header. Every index from 1 to the highest
    must be declared (a gap is a header that skipped one), and a variable tail `[n..]` must
    come right after the last fixed index; anything else is a ValueError."""
    fixed: dict[str, set[int]] = {"KEYS": set(), "ARGV": set()}
    tail: dict[str, int | None] = {"KEYS": None, "ARGV": None}
    for kind, index, more in _DECLARED.findall(header(text)):
        if more:
            tail[kind] = int(index)
        else:
            fixed[kind].add(int(index))
    counts: dict[str, int] = {}
    for kind, seen in fixed.items():
        count = max(seen, default=0)
        if seen != set(range(1, count + 1)):
            missing = sorted(set(range(1, count + 1)) - seen)
            raise ValueError(f"the header declares {kind} up to [{count}] but not {missing}")
        if tail[kind] is not None and tail[kind] != count + 1:
            raise ValueError(f"{kind}[{tail[kind]}..] does not follow the last fixed {kind}[{count}]")
        counts[kind] = count
    return Signature(counts["KEYS"], counts["ARGV"], tail["KEYS"] is not None, tail["ARGV"] is not None)


def signature(name: str) -> Signature:
    """The KEYS and ARGV the script `name` declares (its own header, not its includes')."""
    return parse_signature((LUA_DIR / f"{name}.lua").read_text(encoding="utf-8"))


def signatures() -> dict[str, Signature]:
    """Every script's signature, by name."""
    return {name: signature(name) for name in names()}


class Scripts:
    """Runs the scripts by name.

    On a cluster a call whose node went away is sent again (gateway/platform/redis/cluster.py):
    every script is idempotent by its arguments except those in NOT_RESENT. A retried
    `password_result` of a wrong password would count the failure twice (the check it closes is
    gone, so the retry cannot tell); its caller gets 503 and the check goes stale instead.

    `replicas` > 0: every call waits (`WAIT`) until that many replicas have its writes, at most
    `ack_timeout_ms`; when fewer confirm, the call raises SERVICE_UNAVAILABLE (503). The script
    ran and its decision stands: the same request sent again replays it. Housekeeping that
    decides nothing (NOT_ACKED) does not wait: the writers confirm what they store themselves."""

    NOT_RESENT = frozenset({"password_result"})
    NOT_ACKED = frozenset({"ledger_trim"})

    def __init__(self, resp: Resp | ClusterResp, replicas: int = 0, ack_timeout_ms: int = 500) -> None:
        self._resp = resp
        self.replicas = replicas
        self.ack_timeout_ms = ack_timeout_ms
        #: name → (SHA1 of the text, text)
        self._scripts: dict[str, tuple[str, str]] = {}
        for name in names():
            text = source(name)
            if os.environ.get("CONVENIO_LUA_KEYCHECK") == "1":
                text = keycheck.instrument(text)
            self._scripts[name] = (hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest(), text)

    async def load(self, redis: Redis | RedisCluster) -> None:
        """Load every script at start-up so the first request pays no SCRIPT LOAD (on a
        cluster, into every master; a replica promoted later loads them on first use)."""
        for sha, text in self._scripts.values():
            loaded = await redis.script_load(text)
            if isinstance(loaded, dict):  # a cluster: one reply per master
                loaded = next(iter(set(loaded.values())))
            loaded = loaded.decode() if isinstance(loaded, bytes) else loaded
            if loaded != sha:  # every call would miss and reload: better to say so at start-up
                raise RuntimeError(f"Redis gave SHA {loaded} for a script hashed here as {sha}")

    async def call(self, name: str, keys: list[str], args: list[Any]) -> dict[str, Any]:
        sha, text = self._scripts[name]
        resend = name not in self.NOT_RESENT
        if not self.replicas or name in self.NOT_ACKED:
            return _decode(await self._resp.evalsha(sha, text, keys, args, resend=resend))
        reply, acked = await self._resp.evalsha_acked(sha, text, keys, args, self.replicas, self.ack_timeout_ms, resend)
        if acked < self.replicas:
            metrics.REPLICA_ACKS_MISSING.inc()
            raise ApiError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"The decision was taken but {acked} of {self.replicas} replica(s) confirmed it in time; "
                "send the same request again (same Idempotency-Key) to read it.",
                retry_after=1,
            )
        return _decode(reply)


_decode = msgspec.json.Decoder().decode
