"""The MONTHLY rollover ("rotatividade do saldo"): on the convênio's day at 23:30 in the
convênio's time zone (America/Sao_Paulo by default; a day past the month's end means its last
day; a run starts at 23:30 in São Paulo and a convênio further west waits for its own 23:30) every balance goes back
to its limit: each participant's in individual mode, the shared pool's in shared mode.
Pending holds survive it (their reserved amount is untouched).

The reset is exact AS OF 23:30, however long a million participants take and however late a
re-run comes: each pool's new balance is its limit less what it sold (net of reversals) since
23:30. That figure comes from the ledger, read after the writer stored everything appended
before the read; balance_batch.lua applies it only if the pool's balance is still the one the
ledger showed, and leaves the pools that moved meanwhile for the next round to read again.

It runs through balance_batch.lua like every other balance change, in chunks; the batch key
is the date, so running the same date again (after a crash, or by hand) skips every pool the
journal shows as rolled over for that date. Runs for the same convênio and date never overlap.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import asyncpg

from gateway.platform import locks
from gateway.platform.clock import local_at, local_start
from gateway.platform.locks import Lock
from gateway.platform.progress import Progress
from gateway.platform.services import Services
from ledger.month import balance_batch, jobs
from ledger.month.calendar import ROLLOVER_AT, is_rollover_day

ROUNDS = 10  # reads of the ledger for pools that kept moving while they were being reset
LATER_ROUND_WAIT_S = 600.0


class TooEarly(ValueError):
    """A rollover asked for before its cutoff."""


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
            zone = json.loads(r["record"]).get("time_zone") or "America/Sao_Paulo"
            out.append({"code": r["code"], "shared": r["shared"], "time_zone": zone})
    return out


async def _pools(
    conn: asyncpg.Connection, convenio: str, shared: bool, cutoff: datetime.datetime
) -> list[tuple[str, int, int]]:
    """Each pool with the balance the ledger shows and its net sales since the cutoff."""
    if shared:
        balance = await conn.fetchval("SELECT balance FROM convenios WHERE code = $1", convenio)
        since = await conn.fetchval(
            """SELECT coalesce(sum(amount), 0)::bigint FROM movements
               WHERE convenio = $1 AND pool = 'C' AND at >= $2 AND kind IN ('SALE', 'REVERSAL', 'RETURN')""",
            convenio,
            cutoff,
        )
        return [("", balance, since)]
    rows = await conn.fetch(
        "SELECT participant, balance FROM participants WHERE convenio = $1 ORDER BY participant", convenio
    )
    spent = {
        r["participant"]: r["net"]
        for r in await conn.fetch(
            """SELECT participant, sum(amount)::bigint AS net FROM movements
               WHERE convenio = $1 AND pool = 'P' AND at >= $2 AND kind IN ('SALE', 'REVERSAL', 'RETURN')
               GROUP BY participant""",
            convenio,
            cutoff,
        )
    }
    return [(r["participant"], r["balance"], spent.get(r["participant"], 0)) for r in rows]


async def _roll(
    svc: Services,
    conn: asyncpg.Connection,
    c: dict[str, Any],
    date: datetime.date,
    now: datetime.datetime,
    ledger_wait_s: float,
    progress: Progress | None,
) -> dict[str, int]:
    code, key = c["code"], date.isoformat()
    cutoff = local_at(date, ROLLOVER_AT, c["time_zone"])
    if now < cutoff:
        # 23:30 has not come in the convênio's zone (west of São Paulo): the run fails for it
        # and the scheduler's retry rolls it over once it has
        raise TooEarly(f"its rollover runs at {ROLLOVER_AT:%H:%M} in {c['time_zone']}, not before")
    busy = jobs.JobBusy(f"another rollover of {code} for {key} is in progress")
    async with locks.held(conn, Lock.ROLLOVER, f"{code}/{key}", busy=busy):
        counts = {"pools": 0, "changed": 0, "skipped": 0, "missing": 0, "rounds": 0}
        stale: list[str] = []
        for n in range(ROUNDS):
            # a later round reads the ledger after the writer stored the earlier rounds' own
            # events too (a million pools: a minute or so): it may wait longer
            await jobs.require_ledger(svc, ledger_wait_s if n == 0 else max(ledger_wait_s, LATER_ROUND_WAIT_S))
            done = await balance_batch.already_done(conn, code, "RESET", key, local_start(date, c["time_zone"]))
            pools = await _pools(conn, code, c["shared"], cutoff)
            if counts["rounds"] == 0:
                counts["pools"], counts["skipped"] = len(pools), len(done & {p[0] for p in pools})
            counts["rounds"] += 1
            todo = [p for p in pools if p[0] not in done]
            if not todo:
                break
            tick = progress(f"rollover {code}", len(todo)) if progress else None
            applied = await balance_batch.apply(
                svc, code, "RESET", key, "MONTHLY", todo, shared=c["shared"], progress=tick
            )
            counts["changed"] += applied.changed
            counts["missing"] = len(applied.missing)
            if applied.missing:
                raise RuntimeError(
                    f"{len(applied.missing)} participant(s) of {code} are in the ledger but not in Redis "
                    f"(e.g. {applied.missing[0]}): run `convenio rebuild`, then this rollover again"
                )
            stale = applied.stale
            if not stale:
                break
        else:
            raise RuntimeError(f"{len(stale)} pool(s) of {code} kept changing during the rollover; run it again")
        return counts


async def run(
    svc: Services,
    conn: asyncpg.Connection,
    date: datetime.date,
    *,
    convenio: str | None = None,
    now: datetime.datetime | None = None,
    by: str = "",
    ledger_wait_s: float = 30.0,
    progress: Progress | None = None,
) -> jobs.Run:
    """Roll over the balances of every MONTHLY convênio due on date (or only `convenio`)."""
    now = now or datetime.datetime.now(datetime.UTC)
    if now < local_at(date, ROLLOVER_AT):
        raise TooEarly(f"the rollover of {date} runs at {ROLLOVER_AT:%H:%M} that day (America/Sao_Paulo), not before")
    key = date.isoformat() if convenio is None else f"{date.isoformat()}/{convenio}"
    async with jobs.job_run(conn, "rollover", key, now, by) as job:
        if job.already_done:
            return job
        counts = job.counts
        counts.update(convenios=0, pools=0, changed=0, skipped=0, missing=0)
        failed: list[str] = []
        await jobs.require_ledger(svc, ledger_wait_s)  # the convênios and their policies are read there
        for c in await due(conn, date, convenio):
            # the date is the batch key: whatever ran for it before (this run's earlier attempt,
            # or a run for the whole day when this one is for one convênio) is not done again
            try:
                done = await _roll(svc, conn, c, date, now, ledger_wait_s, progress)
            except (jobs.JobBusy, jobs.LedgerBehind):
                raise
            except Exception as exc:  # one convênio's trouble does not stop the others'
                failed.append(f"{c['code']}: {exc}")
                continue
            counts["convenios"] += 1
            for name in ("pools", "changed", "skipped", "missing"):
                counts[name] += done[name]
        if failed:
            counts["failed"] = failed
            raise RuntimeError(f"rollover failed for {len(failed)} convênio(s): {'; '.join(failed)}")
        return job
