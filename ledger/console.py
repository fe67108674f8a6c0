"""What every `convenio` command shares: its settings (the environment, overridden by the group's
options), running a coroutine with the services or a Postgres connection, one line and an exit
code for what an operator can mend, the date, --by and --json options, and progress bars.

Exit codes: 0 done (or already done), 1 failed or refused, 2 usage, 3 a service is down or the
ledger writer is behind, 4 another run of the same job is in progress.
"""

from __future__ import annotations

import asyncio
import datetime
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import asyncpg
import click
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.platform import clock
from gateway.platform.config import Settings
from gateway.platform.progress import Tick
from gateway.platform.services import Services

T = TypeVar("T")
EXIT_FAILURE, EXIT_UNAVAILABLE, EXIT_BUSY = 1, 3, 4


# -- settings and services ------------------------------------------------------------------------
def settings() -> Settings:
    """The settings of this invocation: the root group's (built from the environment and its
    options), or the environment's when a command runs on its own."""
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    if root is not None and isinstance(root.obj, Settings):
        return root.obj
    built = Settings.from_env()
    if root is not None:
        root.obj = built
    return built


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def with_services(fn: Callable[[Services], Awaitable[T]]) -> T:
    svc = await Services.open(settings())
    try:
        await svc.start()
        return await fn(svc)
    finally:
        await svc.close()


async def with_postgres(fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run fn(connection) on the ledger's database."""
    conn = await asyncpg.connect(settings().database_url, timeout=10)
    try:
        return await fn(conn)
    finally:
        await conn.close()


async def with_ledger(fn: Callable[[Services, asyncpg.Connection], Awaitable[T]]) -> T:
    """Run fn(services, connection)."""
    return await with_services(lambda svc: with_postgres(lambda conn: fn(svc, conn)))


# -- failures ---------------------------------------------------------------------------------------
def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    click.echo(f"convenio: {message}", err=True)
    sys.exit(code)


def guard(fn: Callable[[], T]) -> T:
    """Turn the usual operator mistakes (a service down, a database not there or not migrated,
    a missing setting) into one clear line and an exit code."""
    try:
        return fn()
    except RedisConnectionError as exc:
        fail(f"cannot reach Redis at {settings().redis_url}: {exc}", EXIT_UNAVAILABLE)
    except asyncpg.InvalidCatalogNameError as exc:
        fail(f"the ledger database does not exist: {exc}", EXIT_UNAVAILABLE)
    except asyncpg.UndefinedTableError as exc:
        fail(f"the ledger database is not migrated (run `convenio migrate`): {exc}")
    except (OSError, ConnectionError) as exc:
        fail(f"cannot reach a service: {exc}", EXIT_UNAVAILABLE)
    except RuntimeError as exc:
        fail(str(exc))


def call(fn: Callable[[Services], Awaitable[T]]) -> T:
    """fn(services) to completion, guarded."""
    return guard(lambda: run(with_services(fn)))


def call_ledger(fn: Callable[[Services, asyncpg.Connection], Awaitable[T]]) -> T:
    """fn(services, connection) to completion, guarded."""
    return guard(lambda: run(with_ledger(fn)))


def call_postgres(fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """fn(connection) to completion, guarded: for what reads and writes Postgres only."""
    return guard(lambda: run(with_postgres(fn)))


# -- options ------------------------------------------------------------------------------------------
def operator() -> str:
    """Who runs a command, for the records: $CONVENIO_OPERATOR, else the login name."""
    if os.environ.get("CONVENIO_OPERATOR"):
        return os.environ["CONVENIO_OPERATOR"]
    try:
        return getpass.getuser()
    except Exception:  # no login name in a container: say so rather than guess
        return "system"


by_option = click.option(
    "--by",
    default=operator,
    show_default="$CONVENIO_OPERATOR, else the login name",
    help="Who does this; kept in the records.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout (for scripts).")


class Day(click.ParamType):
    """A local date, YYYY-MM-DD, from the year 1900 on (a date that has not come yet is each
    command's to refuse, saying so)."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime.date:
        if isinstance(value, datetime.date):
            return value
        try:
            return clock.parse_date(str(value), last_year=9998)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DAY = Day()


def date_option(*names: str, help: str = "Local date (America/Sao_Paulo), YYYY-MM-DD [default: today].") -> Any:
    """The --date option every dated command takes (the local day; today when left out)."""
    return click.option(*(names or ("--date", "date_")), type=DAY, default=None, metavar="DATE", help=help)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, default=str))


# -- progress ----------------------------------------------------------------------------------------
class Bars:
    """Progress bars on stderr, one per step of a long run (a gateway.platform.progress.Progress)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __call__(self, label: str, total: int) -> Tick:
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
