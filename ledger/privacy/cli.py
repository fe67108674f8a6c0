"""`convenio privacy`: export everything held about a customer (LGPD's access right), or erase
their personal data (name, document, password hash) keeping the ledger's amounts."""

from __future__ import annotations

import click

from ledger import console
from ledger.privacy import personal


@click.group()
def privacy() -> None:
    """A customer's personal data: export it, or erase it (recorded in the audit log)."""


@privacy.command("export")
@click.argument("customer")
@console.by_option
def privacy_export(customer: str, by: str) -> None:
    """Print everything held about CUSTOMER (a participant code) as JSON, the document decrypted."""
    # an unknown customer or a missing data key: one line and exit 1 (console.guard)
    held = console.call_ledger(lambda svc, conn: personal.export(svc, conn, customer, by))
    console.print_json(held)


@privacy.command("erase")
@click.argument("customer")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@console.by_option
def privacy_erase(customer: str, yes: bool, by: str) -> None:
    """Erase CUSTOMER's name, document and password hash everywhere; amounts stay, under a pseudonym."""
    if not yes:
        click.confirm(f"Erase the personal data of customer {customer}? This cannot be undone", abort=True, err=True)
    done = console.call_ledger(lambda svc, conn: personal.erase(svc, conn, customer, by))
    click.echo(f"erased customer {customer}: now {done['pseudonym']} in {', '.join(done['convenios'])}", err=True)
    console.print_json(done)


COMMANDS = (privacy,)
