"""The ledger writer: stores every shard's events in the Postgres journal exactly once, and keeps
the projections (PROJECTIONS, below) in the same transaction.

Ownership. Writers split the streams between them: a writer stores a stream only while its
Postgres connection holds that stream's advisory lock, and it runs every batch transaction on
that same connection. A writer that dies or loses its connection loses its locks and its
open transaction together, so two writers never commit the same stream's events. Each writer
takes a fair share (streams ÷ live writers) and gives back what is over its share.

Order. Events of one stream are committed in stream order: each round the owner delivers the
new entries to itself (XREADGROUP) and then takes the oldest pending entries of the stream,
whoever they were delivered to (XAUTOCLAIM from 0-0), and stores those. A batch a dead writer
had read is therefore stored before anything newer, and projections see every convênio's
events in the order its Lua scripts emitted them.

Exactly once. The journal's key is the event's protocol: a redelivered event inserts nothing,
and only events actually inserted reach the projections. Entries are acknowledged after the
commit, and a stream is trimmed only below its oldest entry not yet acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import zlib
from collections.abc import Iterable
from typing import Any

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.platform import locks
from gateway.platform.locks import Lock
from gateway.platform.postgres import POSTGRES_DOWN
from gateway.platform.redis.keys import LEDGER_GROUP
from gateway.platform.services import Services
from gateway.platform.streams import ledger_lag
from ledger.writer.apikeys import ApiKeysFold
from ledger.writer.audit import AuditFold
from ledger.writer.convenios import ConveniosFold
from ledger.writer.credits import CreditFold
from ledger.writer.decisions import DecisionFold
from ledger.writer.events import Event, clean, to_event
from ledger.writer.fold import Fold, Projection
from ledger.writer.history import HistoryFold

log = logging.getLogger("convenio.ledger")
GROUP = LEDGER_GROUP
APPLICATION = "convenio-ledger"
#: every projection, in the order a batch writes them (a later one's rows may refer to an earlier one's)
PROJECTIONS: tuple[type[Projection], ...] = (
    ConveniosFold,
    ApiKeysFold,
    CreditFold,
    DecisionFold,
    HistoryFold,
    AuditFold,
)
INSERT = """INSERT INTO journal (protocol, shard, stream_id, type, at, data)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::jsonb[])
            ON CONFLICT (protocol) DO NOTHING
            RETURNING protocol"""
PROGRESS = """INSERT INTO ledger_streams (stream, last_id, stored) VALUES ($1, $2, $3)
              ON CONFLICT (stream) DO UPDATE
              SET last_id = EXCLUDED.last_id, stored = ledger_streams.stored + EXCLUDED.stored, updated_at = now()"""
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
#: on a cluster, how long a writer whose streams were all empty waits before reading them again
CLUSTER_POLL_MS = 20


async def ensure_groups(svc: Services) -> None:
    for stream in svc.keys.all_events():
        try:
            await svc.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


Batch = list[tuple[str, list[Event], list[bytes]]]  # (stream, its events in order, their raw data)


async def store_events(conn: asyncpg.Connection, batch: Batch) -> int:
    """Store events of one or more streams (each in stream order) and project the new ones,
    in one transaction; returns how many were new. Streams are independent of each other:
    a convênio's events all live in one."""
    events = [e for _, evs, _ in batch for e in evs]
    raw = [r.decode() for _, _, rs in batch for r in rs]
    async with conn.transaction():
        rows = await conn.fetch(
            INSERT,
            [e.protocol for e in events],
            [e.shard for e in events],
            [e.stream_id for e in events],
            [e.type for e in events],
            [e.at for e in events],
            raw,
        )
        new = {r["protocol"] for r in rows}
        fold = Fold(PROJECTIONS)
        for e in events:
            if e.protocol in new:
                fold.add(e)
        await fold.write(conn)
        progress = [(stream, evs[-1].stream_id, sum(e.protocol in new for e in evs)) for stream, evs, _ in batch if evs]
        await conn.executemany(PROGRESS, progress)
    return len(new)


class Writer:
    def __init__(
        self,
        svc: Services,
        database_url: str,
        consumer: str,
        batch: int = 1000,
        rebalance_s: float = 2.0,
        trim_s: float = 1.0,
    ) -> None:
        self.svc = svc
        self.database_url = database_url
        self.consumer = consumer
        self.batch = batch
        self.rebalance_s = rebalance_s
        self.trim_s = trim_s
        self.streams = svc.keys.all_events()  # stream -> shard name
        self.conn: asyncpg.Connection | None = None
        self.owned: set[str] = set()
        self._rebalanced = 0.0
        self._trimmed = 0.0
        self._to_claim: set[str] = set()
        self.stored = 0

    # -- ownership ------------------------------------------------------------------------------
    async def connect(self) -> None:
        await self.close()
        self.conn = await asyncpg.connect(self.database_url, server_settings={"application_name": APPLICATION})

    async def close(self) -> None:
        self.owned.clear()
        if self.conn is not None:
            conn, self.conn = self.conn, None
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception:  # a broken connection: nothing left to close cleanly
                conn.terminate()

    async def rebalance(self) -> None:
        """Take up to a fair share of the streams, give back what is over it."""
        assert self.conn is not None
        writers = await self.conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
            APPLICATION,
        )
        share = math.ceil(len(self.streams) / max(1, writers))
        for stream in sorted(self.owned)[share:] if len(self.owned) > share else ():
            await locks.release(self.conn, Lock.LEDGER_STREAM, stream)
            self.owned.discard(stream)
            log.info("%s gave back %s", self.consumer, stream)
        # start at a different place per writer, so writers starting together spread out
        order = sorted(self.streams, key=lambda s: zlib.crc32(f"{self.consumer}/{s}".encode()))
        for stream in order:
            if len(self.owned) >= share:
                break
            if stream in self.owned:
                continue
            if await locks.try_acquire(self.conn, Lock.LEDGER_STREAM, stream):
                self.owned.add(stream)
                self._to_claim.add(stream)  # a previous owner may have left entries pending
        self._rebalanced = time.monotonic()

    # -- one round --------------------------------------------------------------------------------
    async def round(self, block_ms: int | None = None) -> int:
        """Deliver new entries of the owned streams, then store each stream's oldest pending
        ones in order. Returns how many entries were handled."""
        if self.conn is None:
            await self.connect()
        if time.monotonic() - self._rebalanced >= self.rebalance_s or not self.owned:
            await self.rebalance()
        if not self.owned:
            if block_ms:
                await asyncio.sleep(block_ms / 1000)
            return 0
        reply = await self._read_new(block_ms)
        now = time.monotonic()
        periodic = now - self._trimmed >= self.trim_s
        claim = self._to_claim | (self.owned if periodic else set())
        self._to_claim = set()
        handled = 0
        for stream in sorted(claim & self.owned):  # first what earlier owners left behind
            handled += await self.store_pending(stream)
        fresh = {
            _name(raw): entries
            for raw, entries in reply
            if entries and _name(raw) in self.owned and _name(raw) not in claim
        }  # (a claimed stream's fresh entries were stored with its pending ones)
        in_order = await self._oldest_pending(fresh)
        for stream in sorted(set(fresh) - set(in_order)):
            # someone else's older entries are pending too: take them all, in order
            handled += await self.store_pending(stream)
        handled += await self.store(in_order)
        if periodic:
            await self.trim()
            self._trimmed = now
        return handled

    async def _read_new(self, block_ms: int | None) -> list:
        """The owned streams' new entries, delivered to this writer: (stream, entries) pairs.

        One server: one XREADGROUP over every owned stream, blocking until something arrives.
        A cluster refuses a command over keys of several slots, and each stream has its own:
        one non-blocking XREADGROUP per stream, at once, and a short pause when all were empty
        (blocking on each would hold a busy stream's entries until every idle one timed out)."""
        redis = self.svc.redis
        if not self.svc.cluster:
            reply = await redis.xreadgroup(
                GROUP, self.consumer, dict.fromkeys(sorted(self.owned), ">"), count=self.batch, block=block_ms
            )
            return list(_entries(reply))
        replies = await asyncio.gather(
            *(redis.xreadgroup(GROUP, self.consumer, {s: ">"}, count=self.batch) for s in sorted(self.owned))
        )
        found = [pair for reply in replies for pair in _entries(reply)]
        if block_ms and not any(entries for _, entries in found):
            await asyncio.sleep(min(block_ms, CLUSTER_POLL_MS) / 1000)
        return found

    async def _oldest_pending(self, fresh: dict[str, list]) -> dict[str, list]:
        """The streams whose entries just read are their only pending ones, hence next in
        order. (A writer that lost its lock without knowing it may have read older ones.)"""
        if not fresh:
            return {}
        async with self.svc.redis.pipeline(transaction=False) as pipe:
            for stream in fresh:
                pipe.xpending(stream, GROUP)
            summaries = await pipe.execute()
        in_order = {}
        for (stream, entries), summary in zip(fresh.items(), summaries, strict=True):
            if summary["pending"] == len(entries) and _name(summary["min"]) == _name(entries[0][0]):
                in_order[stream] = entries
        return in_order

    async def store(self, batches: dict[str, list]) -> int:
        """Store entries of several streams (each in stream order) in one transaction, then
        acknowledge them."""
        assert self.conn is not None
        if self.svc.settings.replica_acks:
            confirmed = await self._replicated([stream for stream, entries in batches.items() if entries])
            batches = {stream: entries for stream, entries in batches.items() if stream in confirmed}
        batch: Batch = []
        for stream, entries in batches.items():
            present = [(sid, f) for sid, f in entries if f]
            if present:
                shard = self.streams[stream]
                events = [to_event(shard, sid, f) for sid, f in present]
                batch.append((stream, events, [clean(f[b"data"]) for _, f in present]))
        if batch:
            self.stored += await store_events(self.conn, batch)
        handled = 0
        for stream, entries in batches.items():
            if entries:
                await self.svc.redis.xack(stream, GROUP, *[sid for sid, _ in entries])
                handled += len(entries)
        return handled

    async def store_pending(self, stream: str) -> int:
        """Take the stream's oldest pending entries (ours or a dead writer's) and store them."""
        handled = 0
        while True:
            _, claimed, *_ = await self.svc.redis.xautoclaim(stream, GROUP, self.consumer, 0, "0-0", count=self.batch)
            stored = await self.store({stream: claimed})
            handled += stored
            if len(claimed) < self.batch or not stored:
                return handled

    async def _replicated(self, streams: list[str]) -> set[str]:
        """Of these streams, those whose entries the replicas confirm having (with
        CONVENIO_REPLICA_ACKS): only they go to Postgres now. The rest stay pending, taken
        again next round. An entry no replica has can vanish in a failover, and its decision
        was answered 503: the ledger must not keep what the live state lost."""
        s = self.svc.settings
        if not streams:
            return set()
        acks = await asyncio.gather(
            *(
                self.svc.resp.replicated(
                    self.svc.keys.replicated(self.streams[st]), s.replica_acks, s.replica_ack_timeout_ms
                )
                for st in streams
            )
        )
        behind = [st for st, acked in zip(streams, acks, strict=True) if acked < s.replica_acks]
        if behind:
            log.warning("replicas have not confirmed %s yet; storing them later", ", ".join(behind))
            self._to_claim.update(behind)
        return set(streams) - set(behind)

    async def trim(self) -> None:
        """Drop the entries every writer has acknowledged: they are stored."""
        for stream in sorted(self.owned):
            await self.svc.run("ledger_trim", [stream], [GROUP])

    # -- the daemon -------------------------------------------------------------------------------
    async def run(self, stopping: asyncio.Event, block_ms: int = 200) -> None:
        await ensure_groups(self.svc)
        backoff = 0.1
        progress = self.stored
        try:
            while not stopping.is_set():
                if self.stored > progress:  # it got somewhere since the last failure: retry fast
                    backoff, progress = 0.1, self.stored
                try:
                    n = await self.round(block_ms)
                    backoff = 0.1
                    if n:
                        log.debug("%s handled %d entries", self.consumer, n)
                except POSTGRES_DOWN as exc:
                    log.warning("Postgres unavailable (%s); retrying in %.1fs", type(exc).__name__, backoff)
                    await self.close()
                    backoff = await _pause(stopping, backoff)
                except REDIS_DOWN as exc:
                    log.warning("Redis unavailable (%s); retrying in %.1fs", type(exc).__name__, backoff)
                    backoff = await _pause(stopping, backoff)
                except ResponseError as exc:
                    if "NOGROUP" in str(exc) or "UNBLOCKED" in str(exc):
                        # Redis lost its data (and maybe was rebuilt): the streams start over
                        log.warning("the ledger's streams are gone from Redis; creating them again")
                        await ensure_groups(self.svc)
                        continue
                    log.exception("unexpected answer from Redis; retrying in %.1fs", backoff)
                    backoff = await _pause(stopping, backoff)
                except Exception:
                    # never die on one bad round: start over (new connection, locks taken again)
                    log.exception("ledger writer round failed; retrying in %.1fs", backoff)
                    await self.close()
                    backoff = await _pause(stopping, backoff)
        finally:
            await self.close()


async def _pause(stopping: asyncio.Event, backoff: float) -> float:
    try:
        await asyncio.wait_for(stopping.wait(), backoff)
    except TimeoutError:
        pass
    return min(backoff * 2, 5.0)


def _name(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entries(reply: Any) -> Iterable[tuple[Any, list]]:
    if not reply:
        return []
    # RESP2 gives [[stream, entries], ...]; RESP3 a dict
    return list(reply.items()) if isinstance(reply, dict) else [(s, e) for s, e in reply]


async def run(svc: Services, database_url: str, consumer: str, stopping: asyncio.Event) -> None:
    await Writer(svc, database_url, consumer).run(stopping)


async def drain(svc: Services, database_url: str, consumer: str = "drain", stall_s: float = 30.0) -> int:
    """Store everything now in the streams as a one-off writer (sharing them with any writer
    running), and return how many entries it handled (`convenio ledger --once`, tests, tools).
    Fails if nothing moves for `stall_s`."""
    await ensure_groups(svc)
    w = Writer(svc, database_url, consumer, rebalance_s=0)
    deadline = time.monotonic() + stall_s
    total, behind = 0, -1
    try:
        while True:
            n = await w.round()
            total += n
            lag = await ledger_lag(svc)
            if lag == 0:  # stored, by this writer or by others running
                return total
            if n or lag < behind:
                deadline = time.monotonic() + stall_s
            behind = lag
            if not n:  # others are storing: let them
                await asyncio.sleep(0.05)
            if time.monotonic() > deadline:
                raise RuntimeError(f"the streams stopped draining for {stall_s}s (is another writer holding them?)")
    finally:
        await w.close()
