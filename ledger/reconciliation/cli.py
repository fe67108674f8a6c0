"""`convenio reconcile ...` and `convenio closing`: the terminals' closing files reconciled with
the ledger, and the cash-closing report (docs/reconciliation.md).

They read and write Postgres only: a night's reconciliation must not depend on Redis or on the
gateway's secrets. Exit codes: 0 done, 1 refused (a bad file, an unknown record, a record that
cannot be undone), 2 usage, 3 Postgres unavailable.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncpg
import click

from gateway.platform.clock import LOCAL, local_today
from gateway.platform.money import brl
from ledger import console
from ledger.console import by_option, json_option, print_json
from ledger.reconciliation import reconcile as rec
from ledger.reconciliation.closing import cash_closing

T = TypeVar("T")
MAX_SHOWN_PROBLEMS = 50


def _call(fn: Callable[[asyncpg.Connection], Awaitable[T]], as_json: bool) -> T:
    """fn(connection) to completion; a refusal becomes its message (and its JSON) and exit 1,
    an unreachable or unmigrated database the usual line and exit code."""
    try:
        return console.call_postgres(fn)
    except rec.BadFile as exc:
        if as_json:
            print_json({"error": str(exc), "problems": [p.as_dict() for p in exc.problems]})
        for problem in exc.problems[:MAX_SHOWN_PROBLEMS]:
            click.echo(f"line {problem.line}: {problem.message}", err=True)
        if len(exc.problems) > MAX_SHOWN_PROBLEMS:
            click.echo(f"... and {len(exc.problems) - MAX_SHOWN_PROBLEMS} more", err=True)
        console.fail(str(exc))
    except rec.ReconciliationError as exc:
        if as_json:
            print_json({"error": str(exc)})
        console.fail(str(exc))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def reconcile() -> None:
    """Reconcile the terminals' closing files (fechamento de caixa) with the ledger's committed
    sales and returns (devoluções): import a file, run the matching (a look-back window of days),
    undo a reconciliation, list records and their history, and the convênios' receivables.

    Exit codes: 0 done; 1 refused (bad file, unknown record, a record that cannot be undone);
    2 usage; 3 Postgres unavailable. The CSV format is in docs/reconciliation.md."""


@reconcile.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@by_option
@json_option
def import_(file: Path, by: str, as_json: bool) -> None:
    """Import a closing file (CSV: store,terminal,date,coupon,convenio,participant,amount[,type][,return];
    a RETURN line names the return and writes its amount negative). A file with any bad line is
    refused whole (exit 1, every bad line named); the same file imported again changes nothing."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        console.fail(f"cannot read {file}: {exc.strerror}")
    bars = console.Bars(enabled=not as_json)
    now = datetime.datetime.now(datetime.UTC)
    try:
        done = _call(lambda conn: rec.import_file(conn, file.name, data, by, now, bars), as_json)
    finally:
        bars.close()
    if as_json:
        print_json(done.as_dict())
        return
    if done.already:
        click.echo(
            f"{file.name} was imported before as file {done.file_id} "
            f"({done.imported_at.astimezone(LOCAL):%Y-%m-%d %H:%M} by {done.imported_by}): nothing changed"
        )
        return
    returns = f", {done.returns} return(s) ({brl(done.returns_amount)} given back)" if done.returns else ""
    click.echo(
        f"imported {file.name} as file {done.file_id}: {done.lines} line(s), {done.sales} sale(s) "
        f"({brl(done.sales_amount)}){returns}, {done.informative} informative"
    )
    click.echo("run `convenio reconcile run` to match them with the ledger", err=True)


@reconcile.command("watch")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, writable=True, path_type=Path))
@click.option("--poll", default=30.0, show_default=True, type=click.FloatRange(min=0.1), help="Seconds between looks.")
@click.option("--once", is_flag=True, help="Look once, import what is there, and exit (for cron).")
@by_option
def watch(directory: Path, poll: float, once: bool, by: str) -> None:
    """Import every closing file dropped in DIRECTORY (*.csv), once each, so that nobody imports by
    hand: an imported file moves to DIRECTORY/imported/, a refused one to DIRECTORY/refused/, each
    with a .log beside it saying what happened. Write a file elsewhere (or under another suffix)
    and rename it into DIRECTORY, so that it is never read half written. While Postgres is
    unreachable the files stay where they are and the next look tries again; the nightly
    `reconcile` job matches what was imported."""
    while True:
        for path in sorted(p for p in directory.glob("*.csv") if p.is_file()):
            try:
                _import_dropped(path, by)
            except SystemExit:  # Postgres unreachable (said on stderr): the file waits for the next look
                if once:
                    raise
        if once:
            return
        time.sleep(poll)


def _import_dropped(path: Path, by: str) -> None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        click.echo(f"cannot read {path}: {exc.strerror}; trying again at the next look", err=True)
        return
    now = datetime.datetime.now(datetime.UTC)
    try:
        done = console.call_postgres(lambda conn: rec.import_file(conn, path.name, data, by, now))
    except rec.BadFile as exc:
        lines = [f"line {p.line}: {p.message}" for p in exc.problems]
        _move(path, "refused", "\n".join([f"{now.isoformat()} {exc}", *lines]) + "\n")
        click.echo(f"refused {path.name}: {exc}", err=True)
        return
    what = (
        f"was imported before as file {done.file_id}: nothing changed"
        if done.already
        else f"imported as file {done.file_id}: {done.lines} line(s), {done.sales} sale(s) ({brl(done.sales_amount)}), "
        f"{done.returns} return(s), {done.informative} informative"
    )
    _move(path, "imported", f"{now.isoformat()} {path.name} {what} (by {by})\n")
    click.echo(f"{path.name} {what}")


def _move(path: Path, into: str, log: str) -> None:
    """The file into DIRECTORY/<into>/ (a name taken there gets the time appended), its .log beside it."""
    folder = path.parent / into
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    if target.exists():
        target = folder / f"{path.stem}-{time.strftime('%Y%m%d%H%M%S')}-{time.monotonic_ns()}{path.suffix}"
    path.replace(target)
    target.with_name(target.name + ".log").write_text(log, encoding="utf-8")


@reconcile.command("run")
@console.date_option("--date", "day", help="The business day to reconcile as of  [default: today]")
@click.option(
    "--window",
    default=3,
    show_default=True,
    type=click.IntRange(0, 366),
    help="Days a record not matched is tried again before it FAILS.",
)
@by_option
@json_option
def run_(day: datetime.date | None, window: int, by: str, as_json: bool) -> None:
    """Match the open records with the ledger's committed sales and its returns, as of a business
    day (each sale on its store's business day, in the store's time zone): records not matched
    are tried again by later runs for the window's days, then FAIL. Running the same run again
    changes nothing."""
    now = datetime.datetime.now(datetime.UTC)
    on = day or local_today(now)
    if on > local_today(now):
        console.fail(f"{on} has not come yet in America/Sao_Paulo (today is {local_today(now)})")
    bars = console.Bars(enabled=not as_json)
    try:
        report = _call(lambda conn: rec.run(conn, on, window, by, now, bars), as_json)
    finally:
        bars.close()
    if as_json:
        print_json(report.as_dict())
        return
    changed = ", ".join(f"{n} {state}" for state, n in report.as_dict()["changed"].items())
    click.echo(f"reconciliation of {on} (look-back {window} day(s), from {report.oldest}) by {by}")
    returns = f" and {report.ledger_returns} return(s)" if report.ledger_returns else ""
    click.echo(f"  tried {report.file_records} file line(s) against {report.ledger_sales} ledger sale(s){returns}")
    click.echo(f"  changed: {changed}; {report.ledger_side_created} ledger-side record(s) created")
    click.echo(f"  receivable: {report.movements} movement(s), {brl(report.receivable)}")
    now_states = ", ".join(f"{n} {s}" for s, n in report.as_dict()["window_states"].items() if n)
    click.echo(f"  records of {report.oldest} .. {on}: {now_states or 'none'}")


@reconcile.command("undo")
@click.argument("record_id", type=click.IntRange(min=1))
@click.option("--note", default="", help="Why (kept in the history).")
@by_option
@json_option
def undo_(record_id: int, note: str, by: str, as_json: bool) -> None:
    """Undo the reconciliation of a RECONCILED or DIVERGENT record (Excluir
    Conciliação): it goes back to NOT_RECONCILED with the other side's record of the sale, the
    receivable gets the counter-movement, and the next run tries it again."""
    now = datetime.datetime.now(datetime.UTC)
    undone = _call(lambda conn: rec.undo(conn, record_id, by, now, note), as_json)
    if as_json:
        print_json({"undone": [r.as_dict() for r in undone]})
        return
    for r in undone:
        click.echo(f"record {r.id} ({r.origin.lower()} side) is {r.state} again: {r.note}")
    click.echo("the next `convenio reconcile run` tries it again", err=True)


@reconcile.command("list")
@click.option("--convenio", help="Only this convênio's records.")
@click.option(
    "--state",
    type=click.Choice(["NOT_RECONCILED", "RECONCILED", "DIVERGENT", "INFORMATIVE", "FAILED"], case_sensitive=False),
    help="Only records in this state.",
)
@console.date_option("--date", "day", help="Only records of this business day.")
@click.option("--store", help="Only this store's records.")
@click.option("--terminal", help="Only this terminal's records.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(min=0), help="At most this many; 0: all.")
@json_option
def list_(
    convenio: str | None,
    state: str | None,
    day: datetime.date | None,
    store: str | None,
    terminal: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """The reconciliation records, by day, store and terminal."""
    found, total = _call(lambda conn: rec.records(conn, convenio, state, day, store, terminal, limit or None), as_json)
    if as_json:
        print_json({"total": total, "records": [r.as_dict() for r in found]})
        return
    for r in found:
        missing = f" missing:{r.missing}" if r.missing else ""
        returned = f" {r.type} {r.return_id}" if r.return_id else ""
        click.echo(
            f"{r.id:>8} {r.business_date} {r.store} {r.terminal} {r.coupon or '-'}{returned} {r.convenio} "
            f"{r.participant or '-'} {brl(r.amount)} {r.state}{missing}  {r.note}"
        )
    click.echo(f"{len(found)} of {total} record(s)", err=True)


@reconcile.command("history")
@click.argument("record_id", type=click.IntRange(min=1))
@json_option
def history_(record_id: int, as_json: bool) -> None:
    """A record's history: when, who, state and note of every change."""
    record, rows = _call(lambda conn: rec.history(conn, record_id), as_json)
    if as_json:
        print_json({"record": record.as_dict(), "history": rows})
        return
    if record.origin == "FILE":
        where = f"{record.file_name} line {record.line}"
    elif record.return_id:
        where = f"ledger return {record.return_id}"
    else:
        where = f"ledger sale {record.empenho_id}"
    returned = f" {record.type} {record.return_id}" if record.return_id else ""
    click.echo(
        f"record {record.id}: {where}: {record.business_date} {record.store} {record.terminal} "
        f"{record.coupon}{returned} {record.convenio} {record.participant} {brl(record.amount)} — {record.state}"
    )
    for h in rows:
        at = datetime.datetime.fromisoformat(h["at"]).astimezone(LOCAL)
        click.echo(f"  {at:%Y-%m-%d %H:%M:%S} {h['by']}: {h['state']}  {h['note']}")


@reconcile.command("receivables")
@click.option("--convenio", help="This convênio's movements; without it, every convênio's balance.")
@json_option
def receivables_(convenio: str | None, as_json: bool) -> None:
    """The convênio's financial account: a movement for every reconciled sale, and
    a counter-movement when a reconciliation is undone or the sale is reversed afterwards; a
    reconciled return given back to the pool takes its amount off (RETURN)."""
    if convenio is None:
        balances = _call(rec.receivable_balances, as_json)
        if as_json:
            print_json({"convenios": balances})
            return
        for b in balances:
            click.echo(f"{b['convenio']}  {brl(b['balance'])}  ({b['movements']} movement(s))")
        return
    account = _call(lambda conn: rec.receivables(conn, convenio), as_json)
    if as_json:
        print_json(account)
        return
    for m in account["movements"]:
        click.echo(
            f"{m['seq']:>8} {m['date']} {m['kind']:<10} {brl(m['amount']):>14} {brl(m['balance']):>14}  "
            f"record {m['record']} {m['store']} {m['terminal']} {m['coupon']} {m['participant']}"
            + (f" return {m['return']}" if m["return"] else "")
        )
    click.echo(f"{convenio}: receivable {brl(account['balance'])} ({len(account['movements'])} movement(s))")


@click.command("closing", context_settings={"help_option_names": ["-h", "--help"]})
@console.date_option("--date", "day", help="The business day  [default: today]")
@click.option("--store", help="Only this store.")
@click.option("--terminal", help="Only this terminal.")
@json_option
def closing(day: datetime.date | None, store: str | None, terminal: str | None, as_json: bool) -> None:
    """The cash-closing report (fechamento de caixa) of a business day, per store and terminal:
    sales and reversals, and apart from them the returns (devoluções) taken there (given back to
    the pool, or as a DEVOLUCAO credit), with their totals per convênio and per participant kept
    separately, the net the convênio is charged, and how far the terminal's closing file has
    been reconciled."""
    on = day or local_today()
    report = _call(lambda conn: cash_closing(conn, on, store, terminal), as_json)
    if as_json:
        print_json(report.as_dict())
        return
    data = report.as_dict()

    def line(label: str, t: dict[str, int]) -> str:
        credit = f" ({t['credit_returns']} as credit {brl(t['credit_returns_amount'])})" if t["credit_returns"] else ""
        return (
            f"{label:<28} {t['sales']:>5} sale(s) {brl(t['sales_amount']):>14}   "
            f"{t['reversals']:>4} reversal(s) {brl(t['reversals_amount']):>14}   "
            f"{t['returns']:>4} return(s) {brl(t['returns_amount']):>14}{credit}   net {brl(t['net_amount']):>14}"
        )

    click.echo(f"Fechamento de caixa {on}")
    for t in data["terminals"]:
        click.echo(f"\n{t['store']} / {t['terminal']}")
        click.echo("  " + line("total", t["totals"]))
        click.echo("  per convênio:")
        for c in t["convenios"]:
            click.echo("    " + line(c["convenio"], c))
        click.echo("  per participant:")
        for p in t["participants"]:
            click.echo("    " + line(f"{p['convenio']} {p['participant']}", p))
        if t["returns"]:
            click.echo("  returns taken here:")
        for x in t["returns"]:
            at = datetime.datetime.fromisoformat(x["at"]).astimezone(LOCAL)
            refund = f"CREDIT {x['credit_reference']}" if x["refund"] == "CREDIT" else "POOL"
            click.echo(
                f"    {at:%H:%M} {x['id']} {brl(x['amount']):>14} {refund}  of {x['coupon'] or x['empenho']} "
                f"({x['convenio']} {x['participant']}) sold {x['sale_date']} at {x['sale_store']} {x['sale_terminal']}"
            )
        r, back = t["reconciliation"], t["return_reconciliation"]
        none = "no sale line" if back["file_lines"] else "no closing file imported"
        states = ", ".join(f"{n} {s}" for s, n in r["states"].items() if n) or none
        click.echo(f"  closing file: {r['file_lines']} line(s), {brl(r['file_amount'])}: {states}")
        if back["file_lines"]:
            states = ", ".join(f"{n} {s}" for s, n in back["states"].items() if n)
            click.echo(
                f"  closing file's returns: {back['file_lines']} line(s), "
                f"{brl(back['file_amount'])} given back: {states}"
            )
    if not data["terminals"]:
        click.echo("no convênio sale or return on this day", err=True)
    click.echo("\n" + line("all terminals", data["totals"]))


COMMANDS = (reconcile, closing)
