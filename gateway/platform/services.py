"""The services every operation works through: settings, Redis (the hot-path client and redis-py),
the key builder, the Lua scripts, the password hasher, the ledger's database and the clock.
The HTTP app, the sweeper, the batches and the CLI each open one `Services` and pass it down."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.platform.clock import system_ms
from gateway.platform.config import Settings
from gateway.platform.ids import new_protocol
from gateway.platform.passwords import PasswordHasher
from gateway.platform.postgres import LedgerDB
from gateway.platform.redis.cluster import ClusterResp
from gateway.platform.redis.keys import Keys
from gateway.platform.redis.resp import Resp
from gateway.platform.redis.scripts import Scripts


class ShardMismatch(RuntimeError):
    pass


async def is_cluster(url: str, wait_s: float = 2.0) -> bool:
    """Whether the node at `url` is a Redis Cluster node (`INFO cluster`). A node that cannot be
    reached counts as a single server: the gateway starts and answers 503 until Redis is back."""
    probe = Redis.from_url(url, socket_timeout=wait_s, socket_connect_timeout=wait_s)
    try:
        return bool((await probe.info("cluster")).get("cluster_enabled"))
    except (RedisConnectionError, RedisTimeoutError, OSError):
        return False
    finally:
        await probe.aclose()


async def connect_redis(settings: Settings) -> Redis | RedisCluster:
    """redis-py on the configured Redis, a server or a cluster, found out by asking it."""
    timeout = settings.redis_timeout_ms / 1000
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 30,
        "max_connections": 512,
    }
    if settings.redis_cluster_nodes or await is_cluster(settings.redis_url, timeout):
        nodes = [ClusterNode(host, port) for host, port in settings.cluster_seeds()]
        return RedisCluster.from_url(settings.redis_url, startup_nodes=nodes, **options)
    return Redis.from_url(settings.redis_url, **options)


class Services:
    def __init__(self, settings: Settings, redis: Redis | RedisCluster) -> None:
        self.settings = settings
        #: redis-py, for everything off the hot path (a RedisCluster when REDIS_URL names a cluster node)
        self.redis: Any = redis
        self.cluster = isinstance(redis, RedisCluster)
        timeout = settings.redis_timeout_ms / 1000
        #: the pipelining client for the hot path: scripts and the idempotency claim
        self.resp: Resp | ClusterResp = (
            ClusterResp.from_url(settings.redis_url, timeout=timeout, more=settings.cluster_seeds())
            if self.cluster
            else Resp.from_url(settings.redis_url, timeout=timeout)
        )
        self.keys = Keys(settings.key_prefix, settings.shards)
        self.scripts = Scripts(self.resp, settings.replica_acks, settings.replica_ack_timeout_ms)
        #: Postgres, for the reads that outlive Redis (decisions, old empenhos, movements)
        self.ledger = LedgerDB(settings.database_url)
        #: milliseconds since the epoch; tests replace it to move time without waiting
        self.clock: Callable[[], int] = system_ms

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        """Services on the configured Redis: a single server or, when the node REDIS_URL names
        says `cluster_enabled:1` (or CONVENIO_REDIS_CLUSTER_NODES lists more nodes), the Redis
        Cluster it belongs to."""
        return cls(settings, await connect_redis(settings))

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
