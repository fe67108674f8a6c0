"""The customers' current-account commands (issue 7): `convenio credits export` (Postgres
only, DATABASE_URL) and `convenio credits verify` (Redis against Postgres). Registered on
`convenio` by ledger/cli.py (COMMANDS).

Exit codes: 0 done (verify: no drift), 1 failed (verify: drift), 2 usage, 3 a service is not there.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import click


def _cli() -> Any:
    from ledger import cli

    return cli


def _date(value: str, name: str) -> datetime.date:
    from ledger.local_calendar import parse_date

    try:
        return parse_date(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


@click.group()
def credits() -> None:
    """The customers' current accounts (seed 000): finance's export, and a drift check."""


@credits.command("export")
@click.option("--from", "start", required=True, help="First local day (America/Sao_Paulo), YYYY-MM-DD.")
@click.option("--to", "end", required=True, help="Last local day, included, YYYY-MM-DD.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write here instead of stdout.")
def export(start: str, end: str, fmt: str, output: str | None) -> None:
    """Every debit and credit of the period, with each credit's reference and type: one line per
    credit touched (CREDIT registered, DEBIT an order's committed part, RETURN a returned
    order's part), amounts in integer centavos; JSON adds the totals per type."""
    from ledger import credit_export

    first, last = _date(start, "--from"), _date(end, "--to")
    if last < first:
        raise click.BadParameter("must not be before --from", param_hint="--to")
    cli = _cli()
    exported = cli._guard_ledger(
        lambda: cli._run(cli._with_postgres(lambda conn: credit_export.export(conn, first, last)))
    )
    text = credit_export.as_csv(exported) if fmt == "csv" else json.dumps(exported, ensure_ascii=False) + "\n"
    if output:
        with open(output, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    else:
        click.echo(text, nl=False)
    totals = exported["totals"]
    click.echo(
        f"{totals['count']} movement(s) from {first} to {last}: credits {totals['credits']}, "
        f"debits {totals['debits']} centavos",
        err=True,
    )


@credits.command("verify")
@click.option("--wait", "wait_s", default=10.0, show_default=True, help="Seconds to wait for the ledger to catch up.")
def verify(wait_s: float) -> None:
    """Compare every credit's remaining and every PENDING credit hold in Redis with the ledger.
    Exit 0: no drift; 1: drift (each difference printed)."""
    import sys

    from ledger.credit_projections import drift
    from ledger.verify import wait_for_ledger

    async def go(gw: Any, conn: Any) -> tuple[int, list[str]]:
        lag = await wait_for_ledger(gw, wait_s)
        return lag, await drift(gw, conn)

    cli = _cli()
    lag, lines = cli._guard_ledger(lambda: cli._run(cli._with_ledger(go)))
    for line in lines:
        click.echo(line)
    if lag:
        click.echo(f"note: {lag} events were not stored yet; differences may be in flight", err=True)
    click.echo(f"DRIFT: {len(lines)} difference(s)" if lines else "no drift in the customers' credits")
    sys.exit(1 if lines else 0)


COMMANDS = (credits,)
