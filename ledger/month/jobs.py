"""Every batch run is recorded: one row of job_runs per (job, key), e.g. ('rollover',
'2026-11-30'). A run that ended DONE is not run again (asking again reports it and changes
nothing); a RUNNING or FAILED one is resumed by the next run of the same key, which then
knows it is a re-run (`resumed`) and must skip what the earlier attempt already did.

Two runs of the same key never overlap: the run holds a session advisory lock on its own
Postgres connection, released when that connection ends, however the process ends.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from gateway.platform import locks
from gateway.platform.locks import Lock
from gateway.platform.services import Services
from gateway.platform.streams import stored_up_to_now
from ledger.console import operator


class JobBusy(Exception):
    """Another run of the same job and key holds its lock."""


class LedgerBehind(Exception):
    """The ledger writer has not stored what the batch must read."""


@dataclass
class Run:
    job: str
    key: str
    resumed: bool
    already_done: bool = False
    counts: dict[str, Any] = field(default_factory=dict)
    started_at: datetime.datetime | None = None
    ended_at: datetime.datetime | None = None
    attempts: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "key": self.key,
            "outcome": "ALREADY_DONE" if self.already_done else "DONE",
            "resumed": self.resumed,
            "attempts": self.attempts,
            "counts": self.counts,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
        }


@asynccontextmanager
async def job_run(
    conn: asyncpg.Connection, job: str, key: str, now: datetime.datetime, by: str = ""
) -> AsyncIterator[Run]:
    """Record a run of (job, key) around the block. The block sees run.already_done (then it
    must do nothing) and run.resumed; it fills run.counts."""
    async with locks.held(
        conn, Lock.JOB_RUN, f"{job}/{key}", busy=JobBusy(f"another `{job}` run for {key} is in progress")
    ):
        row = await conn.fetchrow("SELECT * FROM job_runs WHERE job = $1 AND key = $2", job, key)
        if row is not None and row["outcome"] == "DONE":
            run = Run(job, key, resumed=False, already_done=True, counts=json.loads(row["counts"]))
            run.started_at, run.ended_at, run.attempts = row["started_at"], row["ended_at"], row["attempts"]
            yield run
            return
        row = await conn.fetchrow(
            """INSERT INTO job_runs (job, key, outcome, started_at, run_by)
               VALUES ($1, $2, 'RUNNING', $3, $4)
               ON CONFLICT (job, key) DO UPDATE
                 SET outcome = 'RUNNING', attempts = job_runs.attempts + 1, error = NULL, ended_at = NULL,
                     started_at = EXCLUDED.started_at, run_by = EXCLUDED.run_by
               RETURNING attempts""",
            job,
            key,
            now,
            by or operator(),
        )
        run = Run(job, key, resumed=row["attempts"] > 1, started_at=now, attempts=row["attempts"])
        try:
            yield run
        except BaseException as exc:
            await conn.execute(
                """UPDATE job_runs SET outcome = 'FAILED', ended_at = now(), counts = $3, error = $4
                   WHERE job = $1 AND key = $2""",
                job,
                key,
                json.dumps(run.counts),
                f"{type(exc).__name__}: {exc}"[:1000],
            )
            raise
        run.ended_at = datetime.datetime.now(datetime.UTC)
        await conn.execute(
            "UPDATE job_runs SET outcome = 'DONE', ended_at = $3, counts = $4 WHERE job = $1 AND key = $2",
            job,
            key,
            run.ended_at,
            json.dumps(run.counts),
        )


async def require_ledger(svc: Services, wait_s: float) -> None:
    """Batches read the ledger: everything appended before now must be stored first."""
    behind = await stored_up_to_now(svc, wait_s)
    if behind:
        raise LedgerBehind(
            f"the ledger writer has not stored {behind} event(s) yet; is `convenio ledger` running? "
            f"(waited {wait_s:g} s; --ledger-wait to wait longer)"
        )


async def list_runs(conn: asyncpg.Connection, job: str | None, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT * FROM job_runs WHERE $1::text IS NULL OR job = $1
           ORDER BY started_at DESC, job, key LIMIT $2""",
        job,
        limit,
    )
    return [
        {
            "job": r["job"],
            "key": r["key"],
            "outcome": r["outcome"],
            "attempts": r["attempts"],
            "started_at": r["started_at"].isoformat(),
            "ended_at": r["ended_at"].isoformat() if r["ended_at"] else None,
            "counts": json.loads(r["counts"]),
            "error": r["error"],
            "run_by": r["run_by"],
        }
        for r in rows
    ]
