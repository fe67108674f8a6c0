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
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from gateway.core import Gateway
from gateway.ledger_lag import ledger_lag

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
                 'empenho.held', 'empenho.committed', 'empenho.cancelled', 'empenho.reversed', 'empenho.expired')
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
            delta = f" (differ by {_brl(max(nums) - min(nums))})"
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


def _brl(centavos: int) -> str:
    sign = "-" if centavos < 0 else ""
    reais, cents = divmod(abs(centavos), 100)
    return f"{centavos} centavos (R$ {sign}{reais:,}.{cents:02d})".replace(",", "X").replace(".", ",").replace("X", ".")


def _show(value: Any) -> str:
    return "—" if value is None else str(value)


async def wait_for_ledger(gw: Gateway, timeout_s: float) -> int:
    """Wait (bounded) until the writers have stored every event; returns the lag left."""
    deadline = time.monotonic() + timeout_s
    while True:
        lag = await ledger_lag(gw)
        if lag == 0 or time.monotonic() >= deadline:
            return lag
        await asyncio.sleep(0.1)


async def redis_state(gw: Gateway) -> dict[Key, dict[str, Any]]:
    state: dict[Key, dict[str, Any]] = {}
    k = gw.keys
    every_shard = f"{k.prefix}:{{s*}}"
    async for chunk in _scan(gw, f"{every_shard}:conv:*"):
        rows = await _pipelined(gw, chunk, ("status", "total_limit", "balance", "reserved"))
        for key, r in zip(chunk, rows, strict=True):
            state[(key.split(":conv:", 1)[1], None)] = _row(*r)
    async for chunk in _scan(gw, f"{every_shard}:part:*"):
        rows = await _pipelined(gw, chunk, ("status", "limit", "balance", "reserved"))
        for key, r in zip(chunk, rows, strict=True):
            conv, part = key.split(":part:", 1)[1].split(":", 1)
            state[(conv, part)] = _row(*r)
    for shard in range(gw.settings.shards):
        ids = [i.decode() for i in await gw.redis.zrange(k.pending(shard), 0, -1)]
        keys = [k.empenho(shard, i) for i in ids]
        for conv, part, amount, status in await _pipelined(gw, keys, ("convenio", "participant", "amount", "status")):
            if status != b"PENDING":
                continue
            row = state.setdefault((conv.decode(), part.decode()), _row(None, None, None, None))
            row["pending_count"] += 1
            row["pending_amount"] += int(amount)
    return state


async def _scan(gw: Gateway, pattern: str, size: int = 1000) -> Any:
    chunk: list[str] = []
    async for key in gw.redis.scan_iter(match=pattern, count=size):
        chunk.append(key.decode())
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _pipelined(gw: Gateway, keys: list[str], fields: tuple[str, ...]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for start in range(0, len(keys), 1000):
        async with gw.redis.pipeline(transaction=False) as pipe:
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


async def verify(gw: Gateway, conn: asyncpg.Connection, wait_s: float = 10.0) -> Report:
    report = Report()
    report.lag = await wait_for_ledger(gw, wait_s)
    live = await redis_state(gw)
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
