"""The composition root of `convenio`, the operators' command line: the group with its options,
and each feature's commands, added below explicitly. Configuration comes from the environment
(REDIS_URL, DATABASE_URL, CONVENIO_*), each overridable by an option."""

from __future__ import annotations

import click

from gateway.platform.config import Settings
from ledger.audit import cli as audit_cli
from ledger.month import cli as month_cli
from ledger.ops import cli as ops_cli
from ledger.ops import cluster_cli, operators_cli
from ledger.privacy import cli as privacy_cli
from ledger.reconciliation import cli as reconciliation_cli
from ledger.writer import cli as writer_cli


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--redis-url", envvar="REDIS_URL", help="Redis holding the live balances [env REDIS_URL].")
@click.option("--database-url", envvar="DATABASE_URL", help="Postgres holding the ledger [env DATABASE_URL].")
@click.pass_context
def main(ctx: click.Context, redis_url: str | None, database_url: str | None) -> None:
    """Convênio authorization gateway: operator commands."""
    overrides = {"redis_url": redis_url, "database_url": database_url}
    ctx.obj = Settings.from_env(**{name: value for name, value in overrides.items() if value})


for command in (
    *ops_cli.COMMANDS,
    *cluster_cli.COMMANDS,
    *operators_cli.COMMANDS,
    *writer_cli.COMMANDS,
    *month_cli.COMMANDS,
    *reconciliation_cli.COMMANDS,
    *audit_cli.COMMANDS,
    *privacy_cli.COMMANDS,
):
    main.add_command(command)


if __name__ == "__main__":
    main()
