"""`convenio verify`: compare the live state in Redis with the ledger in Postgres, to the
centavo, and check that the journal alone re-derives every balance.

Three sources are compared per convênio (its pool) and per participant:
  redis       the live hashes and the pending empenhos of each shard
  postgres    the projections the writer keeps
  journal     balances re-derived from the journal's events alone, independently of the
              projections (every money event's effect summed)
Any difference is drift. Run it when the ledger has caught up (it waits for that, bounded):
an event still on its way to Postgres would show as a difference.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from gateway.platform.money import brl
from gateway.platform.services import Services
from gateway.platform.streams import ledger_lag
from gateway.returns.refunds import BATCH, GRACE_S, INTERVAL_S, UNREFUNDED
from ledger.month import jobs

#: the fields compared, in the order they are reported
FIELDS = ("exists", "status", "limit", "balance", "reserved", "pending_count", "pending_amount")
MONEY = {"limit", "balance", "reserved", "pending_amount"}

# Every money event's effect on a pool (the convênio's when participant is NULL), in stream
# order. A `created` event starts its pool afresh (Redis had no such record when it ran, e.g.
# after Redis lost its data and the registry was loaded again), so only it and what follows
# count. Independent of the projections: this reads the journal alone.
JOURNAL_EFFECTS = """
WITH effects AS (
  SELECT data->>'convenio' AS convenio,
         CASE WHEN type LIKE 'convenio.%' OR data->>'pool' = 'C' THEN NULL ELSE data->>'participant' END AS participant,
         split_part(stream_id, '-', 1)::bigint * 1000000 + split_part(stream_id, '-', 2)::bigint AS ord,
         type IN ('participant.created', 'convenio.created') AS fresh,
         CASE type
           WHEN 'participant.created' THEN (data->'record'->>'limit')::bigint - (data->>'previous_limit')::bigint
           WHEN 'participant.updated' THEN (data->'record'->>'limit')::bigint - (data->>'previous_limit')::bigint
           WHEN 'convenio.created' THEN (data->'record'->>'balance')::bigint - (data->>'previous_balance')::bigint
           WHEN 'convenio.updated' THEN (data->'record'->>'balance')::bigint - (data->>'previous_balance')::bigint
           WHEN 'empenho.committed' THEN -(data->>'amount')::bigint
           WHEN 'empenho.reversed' THEN (data->>'amount')::bigint
           WHEN 'empenho.returned' THEN CASE WHEN data->>'refund' = 'POOL' THEN (data->>'amount')::bigint ELSE 0 END
           ELSE 0
         END AS d_balance,
         CASE type
           WHEN 'convenio.created' THEN (data->'record'->>'reserved')::bigint - (data->>'previous_reserved')::bigint
           WHEN 'convenio.updated' THEN (data->'record'->>'reserved')::bigint - (data->>'previous_reserved')::bigint
           WHEN 'empenho.held' THEN (data->>'amount')::bigint
           WHEN 'empenho.committed' THEN -(data->>'held')::bigint
           WHEN 'empenho.cancelled' THEN -(data->>'amount')::bigint
           WHEN 'empenho.expired' THEN -(data->>'amount')::bigint
           ELSE 0
         END AS d_reserved
  FROM journal
  WHERE type IN ('participant.created', 'participant.updated', 'convenio.created', 'convenio.updated',
                 'empenho.held', 'empenho.committed', 'empenho.cancelled', 'empenho.reversed', 'empenho.expired',
                 'empenho.returned')
  UNION ALL
  -- the month's batches: one event per chunk, its items [participant or '', change, balance, reserved]
  SELECT data->>'convenio', NULLIF(item->>0, ''),
         split_part(stream_id, '-', 1)::bigint * 1000000 + split_part(stream_id, '-', 2)::bigint,
         false, (item->>1)::bigint, 0
  FROM journal, jsonb_array_elements(data->'items') AS item
  WHERE type IN ('balance.rolled_over', 'balance.restored')
),
starts AS (
  SELECT convenio, participant, max(ord) AS since FROM effects WHERE fresh GROUP BY convenio, participant
)
SELECT e.convenio, e.participant, sum(e.d_balance)::bigint AS balance, sum(e.d_reserved)::bigint AS reserved
FROM effects e
LEFT JOIN starts s ON s.convenio = e.convenio AND s.participant IS NOT DISTINCT FROM e.participant
WHERE s.since IS NULL OR e.ord >= s.since
GROUP BY e.convenio, e.participant
"""

Key = tuple[str, str | None]  # (convênio, participant or None for the convênio's pool)


@dataclass
class Difference:
    convenio: str
    participant: str | None
    field: str
    values: dict[str, Any]  # source -> value

    def line(self) -> str:
        who = f"convênio {self.convenio}" + (f" participant {self.participant}" if self.participant else " (pool)")
        shown = ", ".join(f"{src} {_show(v)}" for src, v in self.values.items())
        nums = [v for v in self.values.values() if isinstance(v, int) and not isinstance(v, bool)]
        delta = ""
        if self.field in MONEY and len(nums) == len(self.values) and len(set(nums)) > 1:
            delta = f" (differ by {max(nums) - min(nums)} centavos ({brl(max(nums) - min(nums))}))"
        return f"DRIFT {who}: {self.field}: {shown}{delta}"


@dataclass
class Report:
    convenios: int = 0
    participants: int = 0
    pending: int = 0
    journal_events: int = 0
    lag: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def drift(self) -> bool:
        return bool(self.differences)

    def as_dict(self) -> dict[str, Any]:
        return {
            "drift": self.drift,
            "convenios": self.convenios,
            "participants": self.participants,
            "pending_empenhos": self.pending,
            "journal_events": self.journal_events,
            "ledger_lag": self.lag,
            "differences": [
                {"convenio": d.convenio, "participant": d.participant, "field": d.field, **d.values}
                for d in self.differences
            ],
        }


def _show(value: Any) -> str:
    return "—" if value is None else str(value)


async def wait_for_ledger(svc: Services, timeout_s: float) -> int:
    """Wait (bounded) until the writers have stored every event; returns the lag left."""
    deadline = time.monotonic() + timeout_s
    while True:
        lag = await ledger_lag(svc)
        if lag == 0 or time.monotonic() >= deadline:
            return lag
        await asyncio.sleep(0.1)


async def redis_state(svc: Services) -> dict[Key, dict[str, Any]]:
    state: dict[Key, dict[str, Any]] = {}
    k = svc.keys
    every_shard = f"{k.prefix}:{{s*}}"
    async for chunk in _scan(svc, f"{every_shard}:conv:*"):
        rows = await _pipelined(svc, chunk, ("status", "total_limit", "balance", "reserved"))
        for key, r in zip(chunk, rows, strict=True):
            state[(key.split(":conv:", 1)[1], None)] = _row(*r)
    async for chunk in _scan(svc, f"{every_shard}:part:*"):
        rows = await _pipelined(svc, chunk, ("status", "limit", "balance", "reserved"))
        for key, r in zip(chunk, rows, strict=True):
            conv, part = key.split(":part:", 1)[1].split(":", 1)
            state[(conv, part)] = _row(*r)
    for shard in range(svc.settings.shards):
        ids = [i.decode() for i in await svc.redis.zrange(k.pending(shard), 0, -1)]
        keys = [k.empenho(shard, i) for i in ids]
        for conv, part, amount, status in await _pipelined(svc, keys, ("convenio", "participant", "amount", "status")):
            if status != b"PENDING":
                continue
            row = state.setdefault((conv.decode(), part.decode()), _row(None, None, None, None))
            row["pending_count"] += 1
            row["pending_amount"] += int(amount)
    return state


async def _scan(svc: Services, pattern: str, size: int = 1000) -> Any:
    chunk: list[str] = []
    async for key in svc.redis.scan_iter(match=pattern, count=size):
        chunk.append(key.decode())
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _pipelined(svc: Services, keys: list[str], fields: tuple[str, ...]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for start in range(0, len(keys), 1000):
        async with svc.redis.pipeline(transaction=False) as pipe:
            for key in keys[start : start + 1000]:
                pipe.hmget(key, *fields)
            out.extend(await pipe.execute())
    return out


def _row(status: Any, limit: Any, balance: Any, reserved: Any) -> dict[str, Any]:
    def num(v: Any) -> int:
        return int(v) if v not in (None, b"") else 0

    return {
        "exists": status is not None,
        "status": status.decode() if isinstance(status, bytes) else status,
        "limit": num(limit),
        "balance": num(balance),
        "reserved": num(reserved),
        "pending_count": 0,
        "pending_amount": 0,
    }


async def postgres_state(conn: asyncpg.Connection) -> dict[Key, dict[str, Any]]:
    state: dict[Key, dict[str, Any]] = {}
    for r in await conn.fetch("SELECT code, status, total_limit, balance, reserved FROM convenios"):
        state[(r["code"], None)] = _row(r["status"], r["total_limit"], r["balance"], r["reserved"])
    for r in await conn.fetch('SELECT convenio, participant, status, "limit", balance, reserved FROM participants'):
        state[(r["convenio"], r["participant"])] = _row(r["status"], r["limit"], r["balance"], r["reserved"])
    pending = await conn.fetch(
        """SELECT convenio, participant, count(*) AS n, sum(amount)::bigint AS total
           FROM empenhos WHERE status = 'PENDING' GROUP BY convenio, participant"""
    )
    for r in pending:
        row = state.setdefault((r["convenio"], r["participant"]), _row(None, None, None, None))
        row["pending_count"], row["pending_amount"] = r["n"], r["total"]
    return state


async def journal_balances(conn: asyncpg.Connection) -> dict[Key, tuple[int, int]]:
    return {(r["convenio"], r["participant"]): (r["balance"], r["reserved"]) for r in await conn.fetch(JOURNAL_EFFECTS)}


async def verify(svc: Services, conn: asyncpg.Connection, wait_s: float = 10.0) -> Report:
    report = Report()
    report.lag = await wait_for_ledger(svc, wait_s)
    live = await redis_state(svc)
    stored = await postgres_state(conn)
    derived = await journal_balances(conn)
    report.journal_events = await conn.fetchval("SELECT count(*) FROM journal")
    report.convenios = sum(1 for (_, p) in stored if p is None)
    report.participants = sum(1 for (_, p) in stored if p is not None)
    report.pending = sum(r["pending_count"] for r in stored.values())

    empty = _row(None, None, None, None)
    for key in sorted(set(live) | set(stored), key=lambda k: (k[0], k[1] or "")):
        a, b = live.get(key, empty), stored.get(key, empty)
        for name in FIELDS:
            if a[name] != b[name]:
                report.differences.append(Difference(key[0], key[1], name, {"redis": a[name], "postgres": b[name]}))
    # the journal alone: every pool's balance and reserved
    by_pool: dict[Key, dict[str, int]] = defaultdict(lambda: {"balance": 0, "reserved": 0})
    for key, (balance, reserved) in derived.items():
        by_pool[key] = {"balance": balance, "reserved": reserved}
    for key in sorted(set(by_pool) | set(stored), key=lambda k: (k[0], k[1] or "")):
        projected = stored.get(key, empty)
        if not projected["exists"]:
            continue
        for name in ("balance", "reserved"):
            if by_pool[key][name] != projected[name]:
                values = {"journal": by_pool[key][name], "postgres": projected[name]}
                report.differences.append(Difference(key[0], key[1], name, values))
    return report


# -- the customers' credits ------------------------------------------------------------------------
STORED_REMAINING = "SELECT customer, id, reference, remaining FROM credits"
STORED_PENDING = "SELECT id, customer, amount FROM credit_holds WHERE status = 'PENDING'"


async def credit_drift(svc: Services, conn: asyncpg.Connection) -> list[str]:
    """Every difference between Redis and the ledger: each credit's remaining, and which credit
    holds are PENDING (run it once the writer has caught up); and every return refunded as credit
    whose credit was never made. Empty: no drift."""
    k = svc.keys
    live: dict[tuple[str, str], tuple[str, int]] = {}
    async for raw in svc.redis.scan_iter(match=f"{k.prefix}:{{s*}}:ccr:*", count=1000):
        for value in (await svc.redis.hgetall(raw)).values():
            rec = json.loads(value)
            live[(rec["customer"], rec["id"])] = (rec["ref"], rec["remaining"])
    rows = await conn.fetch(STORED_REMAINING)
    stored = {(r["customer"], r["id"]): (r["reference"], r["remaining"]) for r in rows}
    lines = []
    for key in sorted(set(live) | set(stored)):
        a, b = live.get(key), stored.get(key)
        if a != b:
            ref = (a or b or ("?", 0))[0]
            lines.append(
                f"DRIFT credit {key[0]}/{key[1]} ({ref}): remaining: redis {a[1] if a else '—'}, "
                f"postgres {b[1] if b else '—'}"
            )
    pending_live: dict[str, int] = {}
    for shard in range(svc.settings.shards):
        for raw in await svc.redis.zrange(k.credit_pending(shard), 0, -1):
            status, amount = await svc.redis.hmget(k.credit_hold(shard, raw.decode()), "status", "amount")
            if status == b"PENDING":
                pending_live[raw.decode()] = int(amount)
    pending_stored = {r["id"]: r["amount"] for r in await conn.fetch(STORED_PENDING)}
    for hold_id in sorted(set(pending_live) ^ set(pending_stored)):
        where = "redis" if hold_id in pending_live else "postgres"
        lines.append(f"DRIFT credit hold {hold_id}: PENDING in {where} only")
    for r in await conn.fetch(UNREFUNDED, GRACE_S, BATCH):
        lines.append(
            f"DRIFT return {r['id']} of {r['empenho_id']}: refunded as credit, yet {r['participant']} has no credit"
            f" {r['credit_reference']} (the gateway workers make it within {int(INTERVAL_S)} s)"
        )
    return lines


async def recorded(svc: Services, conn: asyncpg.Connection, wait_s: float, by: str = "") -> Report:
    """verify, recorded as a run of the job `verify` (keyed by its start, to the second): what the
    back office's dashboard shows as the last verify. A drift is a FAILED run with its count."""
    now = datetime.datetime.now(datetime.UTC)
    report: Report | None = None
    with contextlib.suppress(Drift):
        async with jobs.job_run(conn, "verify", now.strftime("%Y-%m-%dT%H:%M:%SZ"), now, by) as run:
            report = await verify(svc, conn, wait_s)
            run.counts.update(
                differences=len(report.differences), convenios=report.convenios, participants=report.participants
            )
            if report.drift:
                raise Drift(f"{len(report.differences)} difference(s)")
    assert report is not None
    return report


class Drift(RuntimeError):
    """What fails a recorded verify run: Redis, the projections and the journal disagree."""
