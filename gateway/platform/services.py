"""The services every operation works through: settings, Redis (the hot-path client and redis-py),
the key builder, the Lua scripts, the password hasher, the ledger's database and the clock.
The HTTP app, the sweeper, the batches and the CLI each open one `Services` and pass it down."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from redis.asyncio import Redis

from gateway.platform.clock import system_ms
from gateway.platform.config import Settings
from gateway.platform.ids import new_protocol
from gateway.platform.passwords import PasswordHasher
from gateway.platform.postgres import LedgerDB
from gateway.platform.redis.keys import Keys
from gateway.platform.redis.resp import Resp
from gateway.platform.redis.scripts import Scripts


class ShardMismatch(RuntimeError):
    pass


class Services:
    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        #: redis-py, for everything off the hot path
        self.redis = redis
        #: the pipelining client for the hot path: scripts and the idempotency claim
        self.resp = Resp.from_url(settings.redis_url, timeout=settings.redis_timeout_ms / 1000)
        self.keys = Keys(settings.key_prefix, settings.shards)
        self.scripts = Scripts(self.resp)
        #: Postgres, for the reads that outlive Redis (decisions, old empenhos, movements)
        self.ledger = LedgerDB(settings.database_url)
        #: milliseconds since the epoch; tests replace it to move time without waiting
        self.clock: Callable[[], int] = system_ms

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        timeout = settings.redis_timeout_ms / 1000
        redis = Redis.from_url(
            settings.redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
            max_connections=512,
        )
        return cls(settings, redis)

    @cached_property
    def passwords(self) -> PasswordHasher:
        """Made on first use: only what hashes or checks a password needs the pepper."""
        return PasswordHasher(self.settings.secret_pepper(), self.settings.password_threads)

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
        if "passwords" in self.__dict__:
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
