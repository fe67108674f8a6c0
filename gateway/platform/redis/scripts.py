"""Loads the Lua scripts beside this module and runs them by SHA.

A script may include shared fragments with a line `--!include lib/name.lua`; they are inlined
here, once, so every script is still a single self-contained EVALSHA. Calls go through the
pipelining client in gateway/resp.py, which reloads a script when Redis answers NOSCRIPT
(after a restart or SCRIPT FLUSH).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis

from gateway.platform.redis.resp import Resp

LUA_DIR = Path(__file__).resolve().parents[2] / "lua"
_INCLUDE = re.compile(r"^--!include (\S+)$", re.MULTILINE)


def source(name: str) -> str:
    """A script's text with its includes inlined."""
    text = (LUA_DIR / f"{name}.lua").read_text(encoding="utf-8")
    return _INCLUDE.sub(lambda m: (LUA_DIR / m.group(1)).read_text(encoding="utf-8"), text)


def names() -> list[str]:
    return sorted(p.stem for p in LUA_DIR.glob("*.lua"))


class Scripts:
    def __init__(self, resp: Resp) -> None:
        self._resp = resp
        #: name → (SHA1 of the text, text)
        self._scripts: dict[str, tuple[str, str]] = {}
        for name in names():
            text = source(name)
            self._scripts[name] = (hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest(), text)

    async def load(self, redis: Redis) -> None:
        """Load every script at start-up so the first request pays no SCRIPT LOAD."""
        for sha, text in self._scripts.values():
            loaded = await redis.script_load(text)
            loaded = loaded.decode() if isinstance(loaded, bytes) else loaded
            if loaded != sha:  # every call would miss and reload: better to say so at start-up
                raise RuntimeError(f"Redis gave SHA {loaded} for a script hashed here as {sha}")

    async def call(self, name: str, keys: list[str], args: list[Any]) -> dict[str, Any]:
        sha, text = self._scripts[name]
        return _decode(await self._resp.evalsha(sha, text, keys, args))


_decode = msgspec.json.Decoder().decode
