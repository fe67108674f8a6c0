"""The month's commands: rollover, duplicatas (generate, list, show, settle, restore, overdue),
the scheduler and the record of job runs. Registered on `convenio` by ledger/cli.py.

Exit codes: 0 done (or already done: nothing changed), 1 failed, 2 usage, 3 a service or
the ledger writer is not there, 4 another run of the same job and date is in progress.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import click

EXIT_BUSY = 4

_DATE_HELP = "Local date (America/Sao_Paulo), YYYY-MM-DD [default: today]."


def _cli() -> Any:
    from ledger import cli

    return cli


def _date(value: str | None) -> datetime.date:
    from ledger.local_calendar import local_today, parse_date

    if value is None:
        return local_today(datetime.datetime.now(datetime.UTC))
    try:
        return parse_date(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--date") from None


class Bars:
    """click progress bars on stderr, one per step of a long run."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __call__(self, label: str, total: int) -> Callable[[int], None]:
        self.close()
        if not self.enabled or total <= 1:
            return lambda n: None
        bar = self.bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)
        bar.__enter__()
        # a step may open a bar of its own (a restoration within a generation): the outer one
        # then stops drawing
        return lambda n: bar.update(n) if self.bar is bar else None

    def close(self) -> None:
        if self.bar is not None:
            bar, self.bar = self.bar, None
            bar.__exit__(None, None, None)


def _run_job(fn: Callable[[Any, Any, Bars], Any], as_json: bool, quiet: bool = False) -> None:
    """Run a job with a gateway and a Postgres connection; print its run; map failures to exit codes."""
    from ledger import jobs

    cli = _cli()
    bars = Bars(enabled=not quiet)

    async def go(gw: Any, conn: Any) -> Any:
        try:
            return await fn(gw, conn, bars)
        finally:
            bars.close()

    try:
        run = cli._guard_ledger(lambda: cli._run(cli._with_ledger(go)))
    except jobs.JobBusy as exc:
        cli._fail(str(exc), EXIT_BUSY)
    except jobs.LedgerBehind as exc:
        cli._fail(str(exc), cli.EXIT_UNAVAILABLE)
    except (ValueError, LookupError) as exc:  # a date not come yet, an unknown convênio
        cli._fail(str(exc) if not isinstance(exc, LookupError) else f"no convênio {exc}")
    _print_run(run, as_json)


def _print_run(run: Any, as_json: bool) -> None:
    d = run.as_dict()
    if as_json:
        click.echo(json.dumps(d, ensure_ascii=False, default=str))
        return
    if run.already_done:
        click.echo(f"{d['job']} {d['key']}: already done at {d['ended_at']}; nothing changed", err=True)
    else:
        again = f" (attempt {d['attempts']}, resuming)" if d["resumed"] else ""
        click.echo(f"{d['job']} {d['key']}: done{again}", err=True)
    for name, value in d["counts"].items():
        click.echo(f"  {name}: {value}")


# -- rollover -------------------------------------------------------------------------------------
@click.command()
@click.option("--date", "date_", metavar="DATE", help=_DATE_HELP)
@click.option("--convenio", help="Only this convênio (still only if its rollover falls on DATE).")
@click.option("--by", default="", help="Who runs it, for the record [default: $CONVENIO_OPERATOR or login].")
@click.option("--ledger-wait", default=30.0, show_default=True, help="Seconds to wait for the ledger writer.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON on stdout.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def rollover(date_: str | None, convenio: str | None, by: str, ledger_wait: float, as_json: bool, quiet: bool) -> None:
    """MONTHLY rollover: every balance of the convênios whose rollover day is DATE goes back to
    its limit (pending holds survive). The scheduler runs it at 23:30; running a date again
    changes nothing."""
    from ledger import rollover as rollover_

    date = _date(date_)
    _run_job(
        lambda gw, conn, bars: rollover_.run(
            gw, conn, date, convenio=convenio, by=by, ledger_wait_s=ledger_wait, progress=bars
        ),
        as_json,
        quiet,
    )


# -- duplicatas -----------------------------------------------------------------------------------
@click.group()
def duplicatas() -> None:
    """Collection bills (duplicatas): generation, settlement, overdue blocking."""


@duplicatas.command("generate")
@click.option("--date", "date_", metavar="DATE", help=_DATE_HELP)
@click.option("--convenio", help="Bill this convênio (whatever its billing mode) instead of the automatic ones.")
@click.option("--by", default="", help="Who runs it, for the record.")
@click.option("--ledger-wait", default=30.0, show_default=True, help="Seconds to wait for the ledger writer.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON on stdout.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def duplicatas_generate(
    date_: str | None, convenio: str | None, by: str, ledger_wait: float, as_json: bool, quiet: bool
) -> None:
    """Bill the committed sales not billed yet: DAILY convênios the day before DATE, MONTHLY
    ones the month closed before DATE (nightly: on the 1st). ON_BILLING convênios get the
    billed amount back on their balances. Each sale is billed once, however often this runs."""
    from ledger import duplicatas as d

    date = _date(date_)
    _run_job(
        lambda gw, conn, bars: d.generate(
            gw, conn, date, convenio=convenio, by=by, ledger_wait_s=ledger_wait, progress=bars
        ),
        as_json,
        quiet,
    )


@duplicatas.command("overdue")
@click.option("--date", "date_", metavar="DATE", help=_DATE_HELP)
@click.option("--by", default="", help="Who runs it, for the record.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON on stdout.")
def duplicatas_overdue(date_: str | None, by: str, as_json: bool) -> None:
    """Block (BLOCKED_OVERDUE) every convênio with a duplicata unpaid past its due date plus the
    billing's block_after_days; unblock those with none left. Holds on a blocked convênio are
    declined CONVENIO_BLOCKED. A block set by hand is never touched."""
    from ledger import duplicatas as d

    date = _date(date_)
    _run_job(lambda gw, conn, bars: d.overdue(gw, conn, date, by=by), as_json, True)


def _print_duplicatas(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
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
    from ledger import duplicatas as d

    cli = _cli()
    rows = cli._guard_ledger(
        lambda: cli._run(cli._with_ledger(lambda gw, conn: d.listing(conn, convenio, status, limit)))
    )
    _print_duplicatas(rows, as_json)


def _one(fn: Callable[[Any, Any], Any]) -> dict[str, Any]:
    from ledger import duplicatas as d
    from ledger import jobs

    cli = _cli()
    try:
        return cli._guard_ledger(lambda: cli._run(cli._with_ledger(fn)))
    except d.UnknownDuplicata as exc:
        cli._fail(f"no duplicata {exc}")
    except jobs.LedgerBehind as exc:
        cli._fail(f"settled, but giving the amount back must wait: {exc}", cli.EXIT_UNAVAILABLE)
    raise AssertionError("unreachable")


@duplicatas.command("show")
@click.argument("duplicata")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON on stdout.")
def duplicatas_show(duplicata: str, as_json: bool) -> None:
    """One duplicata with every sale and reversal it bills."""
    from ledger import duplicatas as d

    view = _one(lambda gw, conn: d.get(conn, duplicata, items=True))
    if as_json:
        click.echo(json.dumps(view, ensure_ascii=False))
        return
    _print_duplicatas([view], False)
    for line in view["lines"]:
        click.echo(
            f"  {line['at']}  {line['kind']:<8} {line['amount']:>10}  "
            f"{line['participant'] or ''}  {line['empenho'] or ''}"
        )


@duplicatas.command("settle")
@click.argument("duplicata")
@click.option("--by", default="", help="Who settles it, for the record.")
@click.option("--note", default="", help="A note kept with the payment.")
@click.option("--json", "as_json", is_flag=True, help="Print the duplicata as JSON on stdout.")
def duplicatas_settle(duplicata: str, by: str, note: str, as_json: bool) -> None:
    """Settle (quitação): mark it PAID; ON_SETTLEMENT convênios get its amount back on their
    balances; a convênio blocked for overdue duplicatas is unblocked once none is left.
    Settling again changes nothing."""
    from ledger import duplicatas as d

    view = _one(lambda gw, conn: d.settle(gw, conn, duplicata, by=by, note=note))
    _print_duplicatas([view], as_json)


@duplicatas.command("restore")
@click.option("--convenio", help="Only this convênio's duplicatas.")
@click.option("--ledger-wait", default=30.0, show_default=True, help="Seconds to wait for the ledger writer.")
def duplicatas_restore(convenio: str | None, ledger_wait: float) -> None:
    """Finish the balance restorations an interrupted generation or settlement left pending."""
    from ledger import duplicatas as d

    bars = Bars(enabled=True)
    n = _one(lambda gw, conn: d.restore_pending(gw, conn, convenio=convenio, ledger_wait_s=ledger_wait, progress=bars))
    bars.close()
    click.echo(f"{n} duplicata(s) restored", err=True)


# -- the scheduler and the record of runs ---------------------------------------------------------
@click.command()
@click.option("--once", is_flag=True, help="Run what is due now, then exit.")
@click.option("--poll", default=20.0, show_default=True, help="Seconds between looks at the clock.")
def scheduler(once: bool, poll: float) -> None:
    """Run the month's jobs at their times until stopped: the MONTHLY rollover at 23:30, the
    nightly duplicatas and overdue check at 01:00 (America/Sao_Paulo). Every run is recorded
    (`convenio jobs`); a finished one is never run again; a failed one is retried."""
    import asyncpg

    from gateway.config import Settings
    from ledger import scheduler as sched

    cli = _cli()
    url = os.environ.get("DATABASE_URL", Settings.database_url)

    async def go(gw: Any) -> None:
        if once:
            conn = await asyncpg.connect(url, timeout=10)
            try:
                for run in await sched.tick(gw, conn, datetime.datetime.now(datetime.UTC)):
                    click.echo(json.dumps(run, ensure_ascii=False, default=str))
            finally:
                await conn.close()
            return
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        click.echo("scheduler running: rollover 23:30, nightly jobs 01:00 (America/Sao_Paulo)", err=True)
        await sched.serve(gw, lambda: asyncpg.connect(url, timeout=10), stopping, poll_s=poll)

    cli._guard_ledger(lambda: cli._run(cli._with_gateway(go)))
    if not once:
        click.echo("scheduler stopped", err=True)


@click.command("jobs")
@click.option("--job", help="Only this job (rollover, duplicatas, overdue, ...).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON on stdout.")
def jobs_(job: str | None, limit: int, as_json: bool) -> None:
    """The recorded runs of the batch jobs, newest first: start, end, counts, outcome."""
    from ledger import jobs

    cli = _cli()
    rows = cli._guard_ledger(lambda: cli._run(cli._with_ledger(lambda gw, conn: jobs.list_runs(conn, job, limit))))
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for r in rows:
        click.echo(
            f"{r['started_at']}  {r['job']:<12} {r['key']:<24} {r['outcome']:<8} attempts {r['attempts']}  "
            f"{json.dumps(r['counts'])}" + (f"  error: {r['error']}" if r["error"] else "")
        )


COMMANDS = (rollover, duplicatas, scheduler, jobs_)
