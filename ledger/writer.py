"""Ledger writer: copies every shard's event stream into the Postgres journal, exactly once.

Each batch is stored in one transaction keyed by the event's protocol (ON CONFLICT DO
NOTHING), and acknowledged in Redis only after that transaction committed: a writer killed
between the two leaves the batch pending, another writer claims it after `claim_idle_ms`,
and storing it again changes nothing. Several writers share the streams through one
consumer group.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

import asyncpg
from redis.exceptions import ResponseError

from gateway.core import Gateway
from gateway.keys import LEDGER_GROUP

log = logging.getLogger("convenio.ledger")
GROUP = LEDGER_GROUP
INSERT = """INSERT INTO journal (protocol, shard, stream_id, type, at, data)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::jsonb[])
            ON CONFLICT (protocol) DO NOTHING"""


async def ensure_groups(gw: Gateway) -> None:
    for stream in gw.keys.all_events():
        try:
            await gw.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def _row(shard: str, stream_id: bytes, fields: dict[bytes, bytes]) -> tuple[Any, ...]:
    at = datetime.datetime.fromtimestamp(int(fields[b"at"]) / 1000, datetime.UTC)
    return (
        fields[b"protocol"].decode(),
        shard,
        stream_id.decode(),
        fields[b"type"].decode(),
        at,
        fields[b"data"].decode(),
    )


async def store(pool: asyncpg.Pool, gw: Gateway, batch: dict[str, list[tuple[bytes, dict]]]) -> int:
    """Store a batch (stream -> entries) in one transaction, then acknowledge it; returns how
    many entries were handled (a redelivered one is handled without a second row)."""
    shard_of = gw.keys.all_events()
    rows = [_row(shard_of[s], sid, f) for s, entries in batch.items() for sid, f in entries if f]
    if rows:
        columns = list(zip(*rows, strict=True))
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(INSERT, *[list(c) for c in columns])
    for stream, entries in batch.items():
        if entries:
            await gw.redis.xack(stream, GROUP, *[sid for sid, _ in entries])
    return sum(len(e) for e in batch.values())


async def drain_once(
    gw: Gateway,
    pool: asyncpg.Pool,
    consumer: str,
    count: int = 1000,
    block_ms: int | None = None,
    claim_idle_ms: int = 30_000,
) -> int:
    """One round: claim what a dead writer left pending, then read what is new."""
    handled = 0
    for stream in gw.keys.all_events():
        _, claimed, *_ = await gw.redis.xautoclaim(stream, GROUP, consumer, claim_idle_ms, "0-0", count=count)
        if claimed:
            handled += await store(pool, gw, {stream: claimed})
    reply = await gw.redis.xreadgroup(
        GROUP, consumer, dict.fromkeys(gw.keys.all_events(), ">"), count=count, block=block_ms
    )
    if reply:
        batch = {(k.decode() if isinstance(k, bytes) else k): v for k, v in _entries(reply)}
        handled += await store(pool, gw, batch)
    return handled


def _entries(reply: Any) -> list[tuple[Any, list]]:
    # RESP2 gives [[stream, entries], ...]; RESP3 a dict
    return list(reply.items()) if isinstance(reply, dict) else [(s, e) for s, e in reply]


async def run(gw: Gateway, database_url: str, consumer: str, stopping: asyncio.Event) -> None:
    await ensure_groups(gw)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        while not stopping.is_set():
            n = await drain_once(gw, pool, consumer, block_ms=500)
            if n:
                log.info("stored %d events", n)
    finally:
        await pool.close()
