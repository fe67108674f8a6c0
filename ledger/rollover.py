"""The MONTHLY rollover (seed 001, "rotatividade do saldo"): on the convênio's day at 23:30
(America/Sao_Paulo; a day past the month's end means its last day) every balance goes back
to its limit: each participant's in individual mode, the shared pool's in shared mode.
Pending holds survive it (their reserved amount is untouched).

It runs through balance_batch.lua like every other balance change, in chunks; the batch key
is the date, so running the same date again (after a crash, or by hand) skips every pool the
journal shows as rolled over for that date.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

import asyncpg

from gateway.core import Gateway
from ledger import balance_batch, jobs
from ledger.local_calendar import is_rollover_day, local_start

ProgressFactory = Callable[[str, int], Callable[[int], None]]


async def due(conn: asyncpg.Connection, date: datetime.date, convenio: str | None = None) -> list[dict[str, Any]]:
    """The MONTHLY convênios whose rollover falls on date."""
    rows = await conn.fetch(
        """SELECT code, shared, record FROM convenios
           WHERE record->>'rollover_policy' = 'MONTHLY' AND ($1::text IS NULL OR code = $1)
           ORDER BY code""",
        convenio,
    )
    out = []
    for r in rows:
        day = json.loads(r["record"]).get("rollover_day") or "1"
        if is_rollover_day(int(day), date):
            out.append({"code": r["code"], "shared": r["shared"]})
    return out


async def participants(conn: asyncpg.Connection, convenio: str) -> list[str]:
    rows = await conn.fetch("SELECT participant FROM participants WHERE convenio = $1 ORDER BY participant", convenio)
    return [r["participant"] for r in rows]


async def run(
    gw: Gateway,
    conn: asyncpg.Connection,
    date: datetime.date,
    *,
    convenio: str | None = None,
    now: datetime.datetime | None = None,
    by: str = "",
    ledger_wait_s: float = 30.0,
    progress: ProgressFactory | None = None,
) -> jobs.Run:
    """Roll over the balances of every MONTHLY convênio due on date (or only `convenio`)."""
    now = now or datetime.datetime.now(datetime.UTC)
    key = date.isoformat() if convenio is None else f"{date.isoformat()}/{convenio}"
    async with jobs.job_run(conn, "rollover", key, now, by) as job:
        if job.already_done:
            return job
        await jobs.require_ledger(gw, ledger_wait_s)
        counts = job.counts
        counts.update(convenios=0, pools=0, changed=0, skipped=0, missing=0)
        for c in await due(conn, date, convenio):
            pools: list[tuple[str, int | None]]
            pools = [("", None)] if c["shared"] else [(p, None) for p in await participants(conn, c["code"])]
            # the date is the batch key: whatever ran for it before (this run's earlier attempt,
            # or a run for the whole day when this one is for one convênio) is not done again
            done = await balance_batch.already_done(conn, c["code"], "RESET", date.isoformat(), local_start(date))
            tick = progress(f"rollover {c['code']}", len(pools)) if progress else None
            applied = await balance_batch.apply(
                gw, c["code"], "RESET", date.isoformat(), "MONTHLY", pools, shared=c["shared"], skip=done, progress=tick
            )
            counts["convenios"] += 1
            counts["pools"] += len(pools)
            counts["changed"] += applied.changed
            counts["skipped"] += applied.skipped
            counts["missing"] += applied.missing
        return job
