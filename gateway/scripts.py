"""Loads the Lua scripts beside this module and runs them by SHA.

A script may include shared fragments with a line `--!include lib/name.lua`; they are inlined
here, once, so every script is still a single self-contained EVALSHA. redis-py's Script
object reloads a script when Redis answers NOSCRIPT (after a restart or SCRIPT FLUSH).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

LUA_DIR = Path(__file__).with_name("lua")
_INCLUDE = re.compile(r"^--!include (\S+)$", re.MULTILINE)


def source(name: str) -> str:
    """A script's text with its includes inlined."""
    text = (LUA_DIR / f"{name}.lua").read_text(encoding="utf-8")
    return _INCLUDE.sub(lambda m: (LUA_DIR / m.group(1)).read_text(encoding="utf-8"), text)


def names() -> list[str]:
    return sorted(p.stem for p in LUA_DIR.glob("*.lua"))


class Scripts:
    def __init__(self, redis: Redis) -> None:
        self._scripts: dict[str, AsyncScript] = {name: redis.register_script(source(name)) for name in names()}

    async def load(self, redis: Redis) -> None:
        """Load every script at start-up so the first request pays no SCRIPT LOAD."""
        for script in self._scripts.values():
            await redis.script_load(script.script)

    async def call(self, name: str, keys: list[str], args: list[Any]) -> dict[str, Any]:
        raw = await self._scripts[name](keys=keys, args=args)
        return msgspec.json.decode(raw)
