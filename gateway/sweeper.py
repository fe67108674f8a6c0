"""Releases PENDING empenhos whose time ran out. Every gateway worker runs one; the expire
script re-checks status and time, so two sweepers racing on the same hold are harmless."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.exceptions import RedisError

from gateway import credits, empenhos, metrics
from gateway.core import Gateway

log = logging.getLogger("convenio.sweeper")
BATCH = 200


async def sweep_once(gw: Gateway) -> int:
    """Expire every due hold in every shard; returns how many expired."""
    expired = 0
    for shard in range(gw.settings.shards):
        for _ in range(50):  # bounded: a clock moving backwards must not spin here
            due = await gw.redis.zrangebyscore(gw.keys.pending(shard), "-inf", gw.now_ms(), start=0, num=BATCH)
            for raw in due:
                expired += await empenhos.expire(gw, shard, raw.decode())
            if len(due) < BATCH:
                break
    return expired + await credits.sweep_once(gw)


async def run(gw: Gateway, stopping: asyncio.Event) -> None:
    """Sweep every interval until `stopping` is set. Shutdown waits on the event rather than
    on cancellation alone: a cancel landing inside a Redis call can be absorbed by the client."""
    interval = gw.settings.sweep_interval_ms / 1000
    while not stopping.is_set():
        try:
            n = await sweep_once(gw)
            if n:
                metrics.EXPIRED.inc(n)
                log.info("expired %d pending empenhos", n)
        except RedisError as exc:
            log.warning("sweep skipped: Redis unavailable (%s)", type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval)
