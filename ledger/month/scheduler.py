"""The scheduler: one long-running process that runs the month's jobs at their local times.

- 23:30 (America/Sao_Paulo): the MONTHLY rollover of the convênios whose day it is (one in a
  zone further west fails until its own 23:30 and is retried then, RETRY_AFTER);
- 01:00: the nightly jobs: duplicata generation (DAILY: the day before; MONTHLY: the closed
  month, on the 1st), the overdue check (blocks and unblocks), and the reconciliation of the
  day that ended (with re-tries of what is unmatched within its look-back window).

A job is due from its time on; each (job, date) runs until job_runs says DONE, so a scheduler
restarted at 23:50, or the next morning, still rolls over (as of 23:30: see ledger/month/rollover.py)
and bills the night it missed (back to LOOKBACK_DAYS), two schedulers never run the same job
twice (the run's advisory lock), and a FAILED run is tried again after RETRY_AFTER.
Every job can also be run by hand for any date with its own command.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from gateway.platform.clock import LOCAL
from gateway.platform.services import Services
from ledger.month import duplicatas, jobs, rollover
from ledger.month.calendar import ROLLOVER_AT
from ledger.reconciliation import reconcile as reconciliation

log = logging.getLogger("convenio.scheduler")

NIGHTLY_AT = datetime.time(1, 0)
RETRY_AFTER = datetime.timedelta(minutes=5)
LOOKBACK_DAYS = 3  # a scheduler that was down catches up this many days of jobs

Runner = Callable[[Services, asyncpg.Connection, datetime.date, datetime.datetime], Awaitable[jobs.Run]]


@dataclass(frozen=True)
class Job:
    name: str
    at: datetime.time
    run: Runner


async def _rollover(svc: Services, conn: asyncpg.Connection, date: datetime.date, now: datetime.datetime) -> jobs.Run:
    return await rollover.run(svc, conn, date, now=now, by="scheduler")


async def _duplicatas(svc: Services, conn: asyncpg.Connection, date: datetime.date, now: datetime.datetime) -> jobs.Run:
    return await duplicatas.generate(svc, conn, date, now=now, by="scheduler")


async def _overdue(svc: Services, conn: asyncpg.Connection, date: datetime.date, now: datetime.datetime) -> jobs.Run:
    return await duplicatas.overdue(svc, conn, date, now=now, by="scheduler")


async def _reconcile(svc: Services, conn: asyncpg.Connection, date: datetime.date, now: datetime.datetime) -> jobs.Run:
    """The closing files against the ledger as of the day that just ended, with re-tries of
    what is still unmatched within the look-back window."""
    async with jobs.job_run(conn, "reconcile", date.isoformat(), now, "scheduler") as run:
        if not run.already_done:
            report = await reconciliation.run(conn, date - datetime.timedelta(days=1), by="scheduler", now=now)
            run.counts.update(report.as_dict())
        return run


# in the order they run when several are due: bills before the overdue check that reads them
JOBS: list[Job] = [
    Job("duplicatas", NIGHTLY_AT, _duplicatas),
    Job("overdue", NIGHTLY_AT, _overdue),
    Job("reconcile", NIGHTLY_AT, _reconcile),
    Job("rollover", ROLLOVER_AT, _rollover),
]


def due(
    now: datetime.datetime, jobs_: list[Job] | None = None, since: datetime.date | None = None
) -> list[tuple[Job, datetime.date]]:
    """The jobs whose time has come, on the local day of now and, to catch up a night the
    scheduler missed, on the days before it back to `since` (at most LOOKBACK_DAYS), oldest first."""
    local = now.astimezone(LOCAL)
    today = local.date()
    first = max(since or today, today - datetime.timedelta(days=LOOKBACK_DAYS))
    out = []
    for n in range((today - first).days, -1, -1):
        day = today - datetime.timedelta(days=n)
        out += [(j, day) for j in (jobs_ or JOBS) if day < today or local.time() >= j.at]
    return out


async def tick(
    svc: Services, conn: asyncpg.Connection, now: datetime.datetime, jobs_: list[Job] | None = None
) -> list[dict]:
    """Run every due job that is not DONE for its date; returns what each did."""
    out = []
    # catch up only as far back as the scheduler has been running (never on a first start)
    first = await conn.fetchval("SELECT min(started_at) FROM job_runs")
    since = first.astimezone(LOCAL).date() if first else None
    for job, date in due(now, jobs_, since):
        row = await conn.fetchrow(
            "SELECT outcome, ended_at FROM job_runs WHERE job = $1 AND key = $2", job.name, date.isoformat()
        )
        if row is not None and row["outcome"] == "DONE":
            continue
        if row is not None and row["outcome"] == "FAILED" and row["ended_at"] and now - row["ended_at"] < RETRY_AFTER:
            continue
        try:
            run = await job.run(svc, conn, date, now)
            out.append(run.as_dict())
            log.info("%s %s: %s", job.name, date, run.counts)
        except jobs.JobBusy as exc:
            log.info("%s %s: %s", job.name, date, exc)
        except Exception as exc:  # recorded as FAILED by the job; the next ticks retry it
            log.exception("%s %s failed", job.name, date)
            out.append({"job": job.name, "key": date.isoformat(), "outcome": "FAILED", "error": str(exc)})
    return out


async def serve(
    svc: Services,
    connect: Callable[[], Awaitable[asyncpg.Connection]],
    stopping: asyncio.Event,
    poll_s: float = 20.0,
    clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
) -> None:
    """Tick every poll_s until stopping is set; a lost Postgres or Redis is retried."""
    conn: asyncpg.Connection | None = None
    while not stopping.is_set():
        try:
            if conn is None or conn.is_closed():
                conn = await connect()
            await tick(svc, conn, clock())
        except Exception:
            log.exception("scheduler tick failed; retrying in %.0f s", poll_s)
            if conn is not None:
                conn.terminate()
                conn = None
        try:
            await asyncio.wait_for(stopping.wait(), poll_s)
        except TimeoutError:
            pass
    if conn is not None:
        await conn.close()
