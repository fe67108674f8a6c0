"""`convenio audit`: the back office's actions (who, when, what, before, after), newest first, read
from the ledger's audit_log (gateway/audit/query.py, as GET /v1/audit reads it)."""

from __future__ import annotations

import datetime
import json

import click
import msgspec

from gateway.audit import query
from gateway.platform import clock
from ledger import console


def _shown(value: dict | None) -> str:
    return "-" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


@click.command("audit")
@console.date_option("--from", "start", help="From this local date (America/Sao_Paulo), YYYY-MM-DD, on.")
@console.date_option("--to", "end", help="Up to this local date (America/Sao_Paulo), YYYY-MM-DD, included.")
@click.option("--actor", default=None, help='Only this actor: "apikey:<id>", "cli:<login>" or "system".')
@click.option("--action", default=None, help='Only actions starting so, e.g. "apikey." or "participant.updated".')
@click.option("--target", default=None, help='Only targets starting so, e.g. "participant EMP001/".')
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000), help="At most this many.")
@click.option("--after", default=None, type=click.IntRange(0), help="Continue after this seq (the previous page's).")
@console.json_option
def audit(
    start: datetime.date | None,
    end: datetime.date | None,
    actor: str | None,
    action: str | None,
    target: str | None,
    limit: int,
    after: int | None,
    as_json: bool,
) -> None:
    """The audit log of the back office, newest first (never a password, key or document)."""
    if start and end and end < start:
        raise click.BadParameter("--to is before --from", param_hint="--to")
    f = query.Filter(
        start=clock.local_start(start) if start else None,
        end=clock.local_start(end + datetime.timedelta(days=1)) if end else None,
        actor=actor,
        action=action,
        target=target,
    )
    page = console.call_postgres(lambda conn: query.page(conn, f, after, limit))
    if as_json:
        console.print_json(msgspec.to_builtins(page.entries))
    else:
        for e in page.entries:
            click.echo(f"{e.seq}  {e.at}  {e.actor}  {e.action}  {e.target}  {_shown(e.before)} -> {_shown(e.after)}")
    more = f"; more after --after {page.next_after}" if page.next_after else ""
    click.echo(f"{len(page.entries)} action(s){more}", err=True)


COMMANDS: tuple[click.Command, ...] = (audit,)
