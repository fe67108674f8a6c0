"""Balance changes of the month's batches: a rollover (RESET to the limit) or a restoration of
billed amounts (RESTORE), applied through gateway/lua/balance_batch.lua in chunks, the same
way a sale changes a balance.

A batch that dies half-way is run again: its earlier chunks' events are in the journal (the
caller made sure the writer stored everything first), so `already_done` finds the pools they
changed and the re-run skips them. Nothing is applied twice and nothing is kept in Redis for it.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from gateway.platform.progress import Tick
from gateway.platform.services import Services

CHUNK = 200  # participants per script call: about two milliseconds of Redis
#: after each call, pause this share of the time it took, so the holds get Redis in between
PACE = 0.1


@dataclass
class Applied:
    changed: int = 0
    skipped: int = 0  # done by an earlier attempt
    missing: list[str] = field(default_factory=list)  # in Postgres but not in Redis
    stale: list[str] = field(default_factory=list)  # RESET: the balance moved since the ledger was read


async def already_done(
    conn: asyncpg.Connection, convenio: str, mode: str, key: str, since: datetime.datetime
) -> set[str]:
    """Pools ('' for the shared pool) an earlier attempt of this batch changed. `since` only
    narrows the scan (the key alone identifies the batch): give it well before the batch."""
    etype = "balance.rolled_over" if mode == "RESET" else "balance.restored"
    rows = await conn.fetch(
        """SELECT DISTINCT item->>0 AS code
           FROM journal, jsonb_array_elements(data->'items') AS item
           WHERE type = $1 AND at >= $2 AND data->>'convenio' = $3 AND data->>'key' = $4""",
        etype,
        since - datetime.timedelta(days=2),
        convenio,
        key,
    )
    return {r["code"] for r in rows}


def _codes(value: object) -> list[str]:
    return list(value) if isinstance(value, list) else []  # Lua's empty table comes back as {}


async def apply(
    svc: Services,
    convenio: str,
    mode: str,
    key: str,
    policy: str,
    pools: Sequence[tuple[str, int, int | None]],
    *,
    shared: bool,
    skip: set[str] | frozenset[str] = frozenset(),
    progress: Tick | None = None,
    chunk: int | None = None,
) -> Applied:
    """Apply mode to pools, each (participant code or '' for the shared pool, a, b): RESET: a
    the balance the ledger showed, b the net sales since the cutoff; RESTORE: a the amount
    to give back, b None."""
    chunk = chunk or CHUNK
    k = svc.keys
    shard = k.shard_of(convenio)
    head = [k.convenio(convenio), k.events(shard)]
    out = Applied()
    todo = [p for p in pools if p[0] not in skip]
    out.skipped = len(pools) - len(todo)
    if progress and out.skipped:
        progress(out.skipped)
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        keys = list(head) if shared else [*head, *(k.participant(convenio, code) for code, _, _ in part)]
        args: list[str | int] = [svc.now_ms(), svc.protocol(), convenio, mode, key, policy]
        for code, a, b in part:
            args += [code, a, "" if b is None else b]
        started = time.perf_counter()
        res = await svc.run("balance_batch", keys, args)
        if PACE:
            await asyncio.sleep((time.perf_counter() - started) * PACE)
        if not res["ok"]:
            raise RuntimeError(f"{mode} of {convenio} refused: {res['code']}")
        out.changed += res["r"]["changed"]
        out.missing += _codes(res["r"]["missing"])
        out.stale += _codes(res["r"]["stale"])
        if progress:
            progress(len(part))
    return out
