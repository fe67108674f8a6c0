"""`convenio operator`: the people who log in to the back office. A first password is printed
alone on stdout, once, as `apikey create` prints a key; what else there is to say goes to stderr."""

from __future__ import annotations

import json
from typing import NoReturn

import click

from gateway.auth.permissions import parse
from gateway.operators import operators
from gateway.operators.queries import codes
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.services import Services
from ledger import console


def _fail(exc: ApiError) -> NoReturn:
    # the ledger's database down or not migrated is a service's trouble, not a refusal
    console.fail(
        exc.message, console.EXIT_UNAVAILABLE if exc.code == ErrorCode.LEDGER_UNAVAILABLE else console.EXIT_FAILURE
    )


@click.group()
def operator() -> None:
    """Create, list, block and unblock back-office operators, and reset their passwords."""


@operator.command("create")
@click.argument("login")
@click.option("--permissions", required=True, help="Comma-separated codes, e.g. 603,9000.")
@console.by_option
def operator_create(login: str, permissions: str, by: str) -> None:
    """Print LOGIN's first password alone on stdout; it must be changed at the first login."""
    try:
        perms = parse(permissions)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--permissions") from None
    if not perms:
        raise click.BadParameter("give at least one permission code", param_hint="--permissions")
    try:
        password = console.call(lambda svc: operators.create(svc, login, perms, by=f"cli:{by}"))
    except ApiError as exc:
        _fail(exc)
    click.echo(f"operator {login} with permissions {codes(perms)}: first password below, shown once", err=True)
    click.echo(password)


@operator.command("list")
@console.json_option
def operator_list(as_json: bool) -> None:
    """Every operator: login, permissions, status, whether the password must still be changed."""
    try:
        found = console.call(operators.listing)
    except ApiError as exc:
        _fail(exc)
    for o in found:
        if as_json:
            fields = {"login": o.login, "permissions": codes(o.permissions), "status": o.status}
            click.echo(json.dumps({**fields, "must_change_password": o.must_change_password}))
        else:
            first = "  (first password not changed yet)" if o.must_change_password else ""
            click.echo(f"{o.login}  {codes(o.permissions) or '-'}  {o.status}{first}")
    click.echo(f"{len(found)} operator(s)", err=True)


def _set_status(login: str, status: str, by: str) -> None:
    async def change(svc: Services) -> operators.Operator:
        return await operators.set_status(svc, login, status, by=f"cli:{by}")

    try:
        done = console.call(change)
    except ApiError as exc:
        _fail(exc)
    click.echo(f"operator {done.login} is {done.status}", err=True)


@operator.command("block")
@click.argument("login")
@console.by_option
def operator_block(login: str, by: str) -> None:
    """LOGIN can no longer log in; their open sessions end now."""
    _set_status(login, operators.BLOCKED, by)


@operator.command("unblock")
@click.argument("login")
@console.by_option
def operator_unblock(login: str, by: str) -> None:
    """LOGIN can log in again."""
    _set_status(login, operators.ACTIVE, by)


@operator.command("reset-password")
@click.argument("login")
@console.by_option
def operator_reset_password(login: str, by: str) -> None:
    """Print a new first password for LOGIN alone on stdout (to be changed at the next login); their
    sessions end and a lockout is lifted."""
    try:
        password = console.call(lambda svc: operators.reset_password(svc, login, by=f"cli:{by}"))
    except ApiError as exc:
        _fail(exc)
    click.echo(f"operator {login}: new first password below, shown once", err=True)
    click.echo(password)


COMMANDS = [operator]
