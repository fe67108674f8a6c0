"""The Gateway: one object holding what every operation needs (settings, Redis, keys, scripts,
password hasher, clock). The HTTP app, the sweeper and the CLI all work through it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from gateway.clock import system_ms
from gateway.config import Settings
from gateway.ids import new_protocol
from gateway.keys import Keys
from gateway.ledger_db import LedgerDB
from gateway.passwords import PasswordHasher
from gateway.resp import Resp
from gateway.scripts import Scripts


class ShardMismatch(RuntimeError):
    pass


class Gateway:
    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        #: redis-py, for everything off the hot path
        self.redis = redis
        #: the pipelining client for the hot path: scripts and the idempotency claim
        self.resp = Resp.from_url(settings.redis_url, timeout=settings.redis_timeout_ms / 1000)
        self.keys = Keys(settings.key_prefix, settings.shards)
        self.scripts = Scripts(self.resp)
        self.passwords = PasswordHasher(settings.pepper, settings.password_threads)
        #: Postgres, for the reads that outlive Redis (decisions, old empenhos, movements)
        self.ledger = LedgerDB(settings.database_url)
        #: milliseconds since the epoch; tests replace it to move time without waiting
        self.clock: Callable[[], int] = system_ms

    @classmethod
    async def open(cls, settings: Settings) -> Gateway:
        timeout = settings.redis_timeout_ms / 1000
        redis = Redis.from_url(
            settings.redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
            max_connections=512,
        )
        return cls(settings, redis)

    async def start(self) -> None:
        """Check the deployment's shard count and load the scripts (needs Redis up)."""
        await self.check_shards()
        await self.scripts.load(self.redis)

    async def check_shards(self) -> None:
        # The shard count decides every key; two gateways disagreeing would split a convênio.
        meta = self.keys.meta()
        await self.redis.hsetnx(meta, "shards", self.settings.shards)
        stored = int(await self.redis.hget(meta, "shards"))
        if stored != self.settings.shards:
            raise ShardMismatch(f"Redis was set up with {stored} shards but CONVENIO_SHARDS={self.settings.shards}")

    async def close(self) -> None:
        self.passwords.close()
        await self.ledger.close()
        await self.resp.aclose()
        await self.redis.aclose()

    def now_ms(self) -> int:
        return self.clock()

    async def run(self, name: str, keys: list[str], args: list[Any]) -> dict[str, Any]:
        return await self.scripts.call(name, keys, args)

    @staticmethod
    def protocol() -> str:
        return new_protocol()
