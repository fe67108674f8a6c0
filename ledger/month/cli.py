"""The month's commands: rollover, duplicatas (generate, list, show, settle, restore, overdue),
the scheduler and the record of job runs.

Exit codes: 0 done (or already done: nothing changed), 1 failed, 2 usage, 3 a service or
the ledger writer is not there, 4 another run of the same job and date is in progress.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import click

from gateway.platform.clock import local_today
from gateway.platform.services import Services
from ledger import console
from ledger.month import duplicatas as d
from ledger.month import jobs
from ledger.month import rollover as rollovers
from ledger.month import scheduler as schedule

Job = Callable[[Services, asyncpg.Connection, console.Bars], Awaitable[jobs.Run]]


def _run_job(fn: Job, as_json: bool, quiet: bool = False) -> None:
    """Run a job with the services and a Postgres connection; print its run; map failures to exit codes."""
    bars = console.Bars(enabled=not quiet)

    async def go(svc: Services, conn: asyncpg.Connection) -> jobs.Run:
        try:
            return await fn(svc, conn, bars)
        finally:
            bars.close()

    try:
        run = console.call_ledger(go)
    except jobs.JobBusy as exc:
        console.fail(str(exc), console.EXIT_BUSY)
    except jobs.LedgerBehind as exc:
        console.fail(str(exc), console.EXIT_UNAVAILABLE)
    except (ValueError, LookupError) as exc:  # a date not come yet, an unknown convênio
        console.fail(str(exc) if not isinstance(exc, LookupError) else f"no convênio {exc}")
    _print_run(run, as_json)


def _print_run(run: jobs.Run, as_json: bool) -> None:
    out = run.as_dict()
    if as_json:
        console.print_json(out)
        return
    if run.already_done:
        click.echo(f"{out['job']} {out['key']}: already done at {out['ended_at']}; nothing changed", err=True)
    else:
        again = f" (attempt {out['attempts']}, resuming)" if out["resumed"] else ""
        click.echo(f"{out['job']} {out['key']}: done{again}", err=True)
    for name, value in out["counts"].items():
        click.echo(f"  {name}: {value}")


# -- rollover -------------------------------------------------------------------------------------
@click.command()
@console.date_option()
@click.option("--convenio", help="Only this convênio (still only if its rollover falls on DATE).")
@console.by_option
@click.option("--ledger-wait", default=30.0, show_default=True, help="Seconds to wait for the ledger writer.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON on stdout.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def rollover(
    date_: datetime.date | None, convenio: str | None, by: str, ledger_wait: float, as_json: bool, quiet: bool
) -> None:
    """MONTHLY rollover: every balance of the convênios whose rollover day is DATE goes back to
    its limit (pending holds survive). The scheduler runs it at 23:30; running a date again
    changes nothing."""
    date = date_ or local_today()
    _run_job(
        lambda svc, conn, bars: rollovers.run(
            svc, conn, date, convenio=convenio, by=by, ledger_wait_s=ledger_wait, progress=bars
        ),
        as_json,
        quiet,
    )


# -- duplicatas -----------------------------------------------------------------------------------
@click.group()
def duplicatas() -> None:
    """Collection bills (duplicatas): generation, settlement, overdue blocking."""


@duplicatas.command("generate")
@console.date_option()
@click.option("--convenio", help="Bill this convênio (whatever its billing mode) instead of the automatic ones.")
@console.by_option
@click.option("--ledger-wait", default=30.0, show_default=True, help="Seconds to wait for the ledger writer.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON on stdout.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def duplicatas_generate(
    date_: datetime.date | None, convenio: str | None, by: str, ledger_wait: float, as_json: bool, quiet: bool
) -> None:
    """Bill the committed sales not billed yet: DAILY convênios the day before DATE, MONTHLY
    ones the month closed before DATE (nightly: on the 1st). ON_BILLING convênios get the
    billed amount back on their balances. Each sale is billed once, however often this runs."""
    date = date_ or local_today()
    _run_job(
        lambda svc, conn, bars: d.generate(
            svc, conn, date, convenio=convenio, by=by, ledger_wait_s=ledger_wait, progress=bars
        ),
        as_json,
        quiet,
    )


@duplicatas.command("overdue")
@console.date_option()
@console.by_option
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON on stdout.")
def duplicatas_overdue(date_: datetime.date | None, by: str, as_json: bool) -> None:
    """Block (BLOCKED_OVERDUE) every convênio with a duplicata unpaid past its due date plus the
    billing's block_after_days; unblock those with none left. Holds on a blocked convênio are
    declined CONVENIO_BLOCKED. A block set by hand is never touched."""
    date = date_ or local_today()
    _run_job(lambda svc, conn, bars: d.overdue(svc, conn, date, by=by), as_json, True)


def _print_duplicatas(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        console.print_json(rows)
        return
    if not rows:
        click.echo("no duplicatas", err=True)
    for r in rows:
        who = r["participant"] or "(convênio)"
        click.echo(
            f"{r['id']}  {r['convenio']:<10} {who:<12} {r['period_start']}..{r['period_end']}  "
            f"{r['amount']:>12} centavos  {r['items']:>6} items  due {r['due_date']}  {r['status']}"
            + (f"  restore {r['restore']}" if r["restore"] != "NONE" else "")
        )


@duplicatas.command("list")
@click.option("--convenio", help="Only this convênio.")
@click.option("--status", type=click.Choice(["OPEN", "PAID"]), help="Only OPEN or PAID ones.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON on stdout.")
def duplicatas_list(convenio: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List duplicatas, newest period first (amounts in centavos)."""
    rows = console.call_postgres(lambda conn: d.listing(conn, convenio, status, limit))
    _print_duplicatas(rows, as_json)


def _one(fn: Callable[[Services, asyncpg.Connection], Awaitable[Any]]) -> Any:
    try:
        return console.call_ledger(fn)
    except d.UnknownDuplicata as exc:
        console.fail(f"no duplicata {exc}")
    except jobs.LedgerBehind as exc:
        console.fail(f"settled, but giving the amount back must wait: {exc}", console.EXIT_UNAVAILABLE)


@duplicatas.command("show")
@click.argument("duplicata")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON on stdout.")
def duplicatas_show(duplicata: str, as_json: bool) -> None:
    """One duplicata with every sale and reversal it bills."""
    view = _one(lambda svc, conn: d.get(conn, duplicata, items=True))
    if as_json:
        console.print_json(view)
        return
    _print_duplicatas([view], False)
    for line in view["lines"]:
        click.echo(
            f"  {line['at']}  {line['kind']:<8} {line['amount']:>10}  "
            f"{line['participant'] or ''}  {line['empenho'] or ''}"
        )


@duplicatas.command("settle")
@click.argument("duplicata")
@console.by_option
@click.option("--note", default="", help="A note kept with the payment.")
@click.option("--json", "as_json", is_flag=True, help="Print the duplicata as JSON on stdout.")
def duplicatas_settle(duplicata: str, by: str, note: str, as_json: bool) -> None:
    """Settle (quitação): mark it PAID; ON_SETTLEMENT convênios get its amount back on their
    balances; a convênio blocked for overdue duplicatas is unblocked once none is left.
    Settling again changes nothing."""
    view = _one(lambda svc, conn: d.settle(svc, conn, duplicata, by=by, note=note))
    _print_duplicatas([view], as_json)


@duplicatas.command("restore")
@click.option("--convenio", help="Only this convênio's duplicatas.")
@click.option("--ledger-wait", default=30.0, show_default=True, help="Seconds to wait for the ledger writer.")
def duplicatas_restore(convenio: str | None, ledger_wait: float) -> None:
    """Finish the balance restorations an interrupted generation or settlement left pending."""
    bars = console.Bars(enabled=True)
    n = _one(
        lambda svc, conn: d.restore_pending(svc, conn, convenio=convenio, ledger_wait_s=ledger_wait, progress=bars)
    )
    bars.close()
    click.echo(f"{n} duplicata(s) restored", err=True)


# -- the scheduler and the record of runs ---------------------------------------------------------
@click.command()
@click.option("--once", is_flag=True, help="Run what is due now, then exit.")
@click.option("--poll", default=20.0, show_default=True, help="Seconds between looks at the clock.")
def scheduler(once: bool, poll: float) -> None:
    """Run the month's jobs at their times until stopped: the MONTHLY rollover at 23:30, and at
    01:00 (America/Sao_Paulo) the nightly duplicatas, the overdue check and the reconciliation
    of the day that ended. A convênio in a zone west of São Paulo is rolled over at 23:30 and
    billed after midnight of its own zone: the run fails for it until then and is retried.
    Every run is recorded (`convenio jobs`); a finished one is never run again; a failed one is
    retried."""
    url = console.settings().database_url

    async def go(svc: Services) -> None:
        if once:
            conn = await asyncpg.connect(url, timeout=10)
            try:
                for run in await schedule.tick(svc, conn, datetime.datetime.now(datetime.UTC)):
                    console.print_json(run)
            finally:
                await conn.close()
            return
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        click.echo("scheduler running: rollover 23:30, nightly jobs 01:00 (America/Sao_Paulo)", err=True)
        await schedule.serve(svc, lambda: asyncpg.connect(url, timeout=10), stopping, poll_s=poll)

    console.call(go)
    if not once:
        click.echo("scheduler stopped", err=True)


@click.command("jobs")
@click.option("--job", help="Only this job (rollover, duplicatas, overdue, ...).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON on stdout.")
def jobs_(job: str | None, limit: int, as_json: bool) -> None:
    """The recorded runs of the batch jobs, newest first: start, end, counts, outcome."""
    rows = console.call_postgres(lambda conn: jobs.list_runs(conn, job, limit))
    if as_json:
        console.print_json(rows)
        return
    for r in rows:
        click.echo(
            f"{r['started_at']}  {r['job']:<12} {r['key']:<24} {r['outcome']:<8} attempts {r['attempts']}  "
            f"{json.dumps(r['counts'])}" + (f"  error: {r['error']}" if r["error"] else "")
        )


COMMANDS = (rollover, duplicatas, scheduler, jobs_)
