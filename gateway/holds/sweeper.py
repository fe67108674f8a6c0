"""Releases PENDING holds whose time ran out, empenhos and credit holds alike. Every gateway worker
runs one; the expire scripts re-check status and time, so two sweepers racing on the same hold
are harmless."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.exceptions import RedisError

from gateway.holds import lifecycle
from gateway.platform import metrics
from gateway.platform.errors import ApiError
from gateway.platform.services import Services

log = logging.getLogger("convenio.sweeper")
BATCH = 200


async def sweep(svc: Services, kind: lifecycle.Kind) -> int:
    """Expire every due hold of one kind in every shard; returns how many expired."""
    expired = 0
    for shard in range(svc.settings.shards):
        for _ in range(50):  # bounded: a clock moving backwards must not spin here
            due = await svc.redis.zrangebyscore(kind.pending(svc.keys, shard), "-inf", svc.now_ms(), start=0, num=BATCH)
            for raw in due:
                expired += await lifecycle.expire(svc, kind, shard, raw.decode())
            if len(due) < BATCH:
                break
    return expired


async def sweep_once(svc: Services) -> int:
    """Expire every due hold of every kind; returns how many expired."""
    return sum([await sweep(svc, kind) for kind in lifecycle.KINDS])


async def run(svc: Services, stopping: asyncio.Event) -> None:
    """Sweep every interval until `stopping` is set. Shutdown waits on the event rather than
    on cancellation alone: a cancel landing inside a Redis call can be absorbed by the client."""
    interval = svc.settings.sweep_interval_ms / 1000
    while not stopping.is_set():
        try:
            for kind in lifecycle.KINDS:
                n = await sweep(svc, kind)
                if n:
                    metrics.EXPIRED.inc(n)
                    log.info("expired %d pending %ss", n, kind.name)
        except RedisError as exc:
            log.warning("sweep skipped: Redis unavailable (%s)", type(exc).__name__)
        except ApiError as exc:  # the replicas did not confirm an expiry in time: it stands, go on later
            log.warning("sweep paused: %s", exc.code.value)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval)
