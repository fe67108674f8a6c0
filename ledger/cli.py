"""`convenio`: the operators' command line. Configuration comes from the environment
(REDIS_URL, DATABASE_URL, CONVENIO_*), each overridable by an option."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

T = TypeVar("T")
# exit codes: 0 done, 2 usage (click), and these two
EXIT_FAILURE, EXIT_UNAVAILABLE = 1, 3


def _run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def _with_gateway(fn: Callable[[Any], Awaitable[T]]) -> T:
    from gateway.config import Settings
    from gateway.core import Gateway

    gw = await Gateway.open(Settings.from_env())
    try:
        await gw.start()
        return await fn(gw)
    finally:
        await gw.close()


def _fail(message: str, code: int = EXIT_FAILURE) -> None:
    click.echo(f"convenio: {message}", err=True)
    sys.exit(code)


def _guard(fn: Callable[[], T]) -> T:
    """Turn the usual operator mistakes into one clear line and an exit code."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    try:
        return fn()
    except RedisConnectionError as exc:
        _fail(f"cannot reach Redis at {os.environ.get('REDIS_URL', 'REDIS_URL (unset)')}: {exc}", EXIT_UNAVAILABLE)
    except (OSError, ConnectionError) as exc:
        _fail(f"cannot reach a service: {exc}", EXIT_UNAVAILABLE)
    except RuntimeError as exc:
        _fail(str(exc))
    raise AssertionError("unreachable")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--redis-url", envvar="REDIS_URL", help="Redis holding the live balances [env REDIS_URL].")
@click.option("--database-url", envvar="DATABASE_URL", help="Postgres holding the ledger [env DATABASE_URL].")
def main(redis_url: str | None, database_url: str | None) -> None:
    """Convênio authorization gateway: operator commands."""
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    if database_url:
        os.environ["DATABASE_URL"] = database_url


@main.command()
def migrate() -> None:
    """Apply the SQL migrations not applied yet (safe to repeat)."""
    from gateway.config import Settings
    from ledger.migrate import migrate as run_migrate

    url = os.environ.get("DATABASE_URL", Settings.database_url)
    applied = _guard(lambda: _run(run_migrate(url)))
    for name in applied:
        click.echo(f"applied {name}", err=True)
    click.echo(f"{len(applied)} migration(s) applied; the database is up to date.", err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--log-level", default="info", show_default=True)
def serve(host: str, port: int, workers: int, log_level: str) -> None:
    """Run the gateway (HTTP API for terminals and back-office)."""
    import uvicorn

    from gateway.config import Settings

    _guard(lambda: Settings.from_env())  # fail here, clearly, not in every worker
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="convenio-metrics-")
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        # httptools bounds no request head; this subclass refuses one past 24 KiB (431), see header_limit
        http="gateway.header_limit:HeadLimitedHttpToolsProtocol",
        access_log=False,
        proxy_headers=False,  # no client address is used; uvicorn's middleware would cost every request
        log_level=log_level,
    )


@main.group()
def apikey() -> None:
    """Create and revoke API keys (stored hashed; the key is shown once)."""


@apikey.command("create")
@click.option("--permissions", required=True, help="Comma-separated codes, e.g. 3183,3184,3185,3186.")
@click.option("--name", default="", help="Who or what the key is for.")
def apikey_create(permissions: str, name: str) -> None:
    """Print a new API key alone on stdout (its id goes to stderr)."""
    from gateway import apikeys
    from gateway.permissions import parse

    try:
        perms = parse(permissions)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--permissions") from None
    if not perms:
        raise click.BadParameter("give at least one permission code", param_hint="--permissions")
    token, key = _guard(lambda: _run(_with_gateway(lambda gw: apikeys.create(gw, perms, name))))
    click.echo(
        f"api key id {key.id} with permissions {','.join(str(int(p)) for p in sorted(key.permissions))}", err=True
    )
    click.echo(token)


@apikey.command("revoke")
@click.argument("key_id")
def apikey_revoke(key_id: str) -> None:
    """Revoke the API key with this id (as `apikey create` printed it)."""
    from gateway import apikeys
    from gateway.errors import ApiError

    try:
        _guard(lambda: _run(_with_gateway(lambda gw: apikeys.revoke(gw, key_id))))
    except ApiError as exc:
        _fail(exc.message)
    click.echo(f"revoked {key_id}", err=True)


@main.command()
@click.option("--convenio", default="EMP001", show_default=True)
@click.option("--participant", default="CLI001", show_default=True)
def demo(convenio: str, participant: str) -> None:
    """Load the seed's example and print it as JSON (repeatable: changes nothing twice)."""
    from ledger import demo as demo_data

    loaded = _guard(lambda: _run(_with_gateway(lambda gw: demo_data.load(gw, convenio, participant))))
    click.echo(json.dumps(loaded))


@main.command()
@click.option(
    "--consumer",
    default=lambda: f"{socket.gethostname()}-{os.getpid()}",
    show_default="host-pid",
    help="This writer's name in the consumer group; writers share the streams.",
)
@click.option("--once", is_flag=True, help="Store what the streams hold now, then exit.")
def ledger(consumer: str, once: bool) -> None:
    """Run the ledger writer until stopped: every shard's events into the Postgres journal and
    its projections, exactly once (SIGINT/SIGTERM stop it after the batch in hand). Several
    writers share the shards."""
    from gateway.config import Settings
    from ledger import writer

    url = os.environ.get("DATABASE_URL", Settings.database_url)
    if once:
        stored = _guard_ledger(lambda: _run(_with_gateway(lambda gw: writer.drain(gw, url, consumer))))
        click.echo(f"stored {stored} event(s); the ledger has caught up", err=True)
        return

    async def go(gw: Any) -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        click.echo(f"ledger writer {consumer} running", err=True)
        await writer.run(gw, url, consumer, stopping)

    _guard(lambda: _run(_with_gateway(go)))
    click.echo(f"ledger writer {consumer} stopped", err=True)


async def _with_postgres(fn: Callable[[Any], Awaitable[T]]) -> T:
    """Run fn(postgres connection) on the ledger database (DATABASE_URL)."""
    import asyncpg

    from gateway.config import Settings

    conn = await asyncpg.connect(os.environ.get("DATABASE_URL", Settings.database_url), timeout=10)
    try:
        return await fn(conn)
    finally:
        await conn.close()


async def _with_ledger(fn: Callable[[Any, Any], Awaitable[T]]) -> T:
    """Run fn(gateway, postgres connection)."""
    return await _with_gateway(lambda gw: _with_postgres(lambda conn: fn(gw, conn)))


def _guard_ledger(fn: Callable[[], T]) -> T:
    import asyncpg

    try:
        return _guard(fn)
    except asyncpg.InvalidCatalogNameError as exc:
        _fail(f"the ledger database does not exist: {exc}", EXIT_UNAVAILABLE)
    except asyncpg.UndefinedTableError as exc:
        _fail(f"the ledger database is not migrated (run `convenio migrate`): {exc}")
    raise AssertionError("unreachable")


@main.command()
@click.option("--wait", "wait_s", default=10.0, show_default=True, help="Seconds to wait for the ledger to catch up.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def verify(wait_s: float, as_json: bool) -> None:
    """Compare Redis with Postgres, and the journal with both, per convênio and participant,
    to the centavo. Exit 0: no drift; 1: drift (every difference printed); 3: a service is down."""
    from ledger.verify import verify as run_verify

    report = _guard_ledger(lambda: _run(_with_ledger(lambda gw, conn: run_verify(gw, conn, wait_s))))
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        for difference in report.differences:
            click.echo(difference.line())
        if report.lag:
            click.echo(f"note: {report.lag} events were not stored yet; differences may be in flight", err=True)
        verdict = f"DRIFT: {len(report.differences)} difference(s)" if report.drift else "no drift"
        click.echo(
            f"{verdict} — checked {report.convenios} convênio(s), {report.participants} participant(s), "
            f"{report.pending} pending empenho(s), {report.journal_events} journal event(s)"
        )
    sys.exit(EXIT_FAILURE if report.drift else 0)


@main.command()
@click.option("--force", is_flag=True, help="Clear the product's keys first when Redis is not empty.")
@click.option("--if-empty", is_flag=True, help="Do nothing (exit 0) when Redis has data; `./run` starts with this.")
def rebuild(force: bool, if_empty: bool) -> None:
    """Rebuild Redis from Postgres after Redis lost its data: registry, balances, password
    hashes, pending empenhos and idempotency answers. Refuses a Redis with data unless --force."""
    from ledger.rebuild import RedisNotEmpty, product_keys
    from ledger.rebuild import rebuild as run_rebuild

    if if_empty and _guard(lambda: _run(_with_gateway(product_keys))):
        click.echo("Redis has data; nothing to rebuild", err=True)
        return

    def progress(what: str, n: int) -> None:
        click.echo(f"  {what}: {n}", err=True)

    try:
        done = _guard_ledger(lambda: _run(_with_ledger(lambda gw, conn: run_rebuild(gw, conn, force, progress))))
    except RedisNotEmpty as exc:
        _fail(str(exc))
    summary = ", ".join(f"{n} {what}" for what, n in done.counts.items()) or "nothing (the ledger is empty)"
    click.echo(f"rebuilt Redis from the ledger: {summary}")


def _pepper(data_dir: Path) -> str:
    path = data_dir / "pepper"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--data-dir",
    default=".data",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where private Redis/Postgres keep their files when no URL is configured.",
)
def up(host: str, port: int, workers: int, data_dir: Path) -> None:
    """Run the whole product locally: services (private ones when REDIS_URL/DATABASE_URL are
    unset), migrations, the demo data, the gateway, the ledger writer and the month's
    scheduler. Ctrl-C stops everything it started."""
    from ledger import embedded

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C, `kill` and service managers all mean "stop everything": also when the shell
    # that started us left SIGINT ignored (a background job) or sends SIGTERM.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    data_dir = data_dir.resolve()
    started: list[Any] = []
    children: list[subprocess.Popen] = []
    env = dict(os.environ)
    try:
        if not env.get("REDIS_URL") or not env.get("DATABASE_URL"):
            _guard(lambda: embedded.ensure_installed(lambda m: click.echo(m, err=True)))
        if not env.get("REDIS_URL"):
            redis = _guard(lambda: embedded.EmbeddedRedis(data_dir / "redis").start())
            started.append(redis)
            env["REDIS_URL"] = redis.url
            click.echo(f"started private Redis (AOF appendfsync always) at {redis.url}", err=True)
        if not env.get("DATABASE_URL"):
            pg = _guard(lambda: embedded.EmbeddedPostgres(data_dir / "postgres").start())
            started.append(pg)
            env["DATABASE_URL"] = pg.url
            click.echo(f"started private Postgres at {pg.url} (data in {pg.data_dir})", err=True)
        if not env.get("CONVENIO_PEPPER") and not env.get("CONVENIO_PEPPER_FILE"):
            env["CONVENIO_PEPPER"] = _pepper(data_dir)
        os.environ.update(env)
        cli = [sys.executable, "-m", "ledger.cli"]
        subprocess.run([*cli, "migrate"], check=True, env=env)
        # Redis came back empty but the ledger remembers: restore before anything else writes
        subprocess.run([*cli, "rebuild", "--if-empty"], check=True, env=env, stdout=subprocess.DEVNULL)
        loaded = subprocess.run([*cli, "demo"], check=True, env=env, capture_output=True, text=True).stdout
        click.echo(loaded.strip())
        demo_data = json.loads(loaded)
        click.echo(
            f"\nGateway on http://{host}:{port}  (OpenAPI: /openapi.json). Ctrl-C stops everything.\n"
            "For the README's curl walk-through, paste in another shell:\n"
            f"  export B=http://{host}:{port} API_KEY={demo_data['api_key']} "
            f"PASSWORD={demo_data['password']} INTEGRATION_KEY={demo_data['integration_key']} "
            f"REDIS_URL={env['REDIS_URL']} DATABASE_URL={env['DATABASE_URL']}"
            + (f" CONVENIO_PEPPER_FILE={data_dir / 'pepper'}" if (data_dir / "pepper").exists() else "")
            + "\n",
            err=True,
        )
        children.append(
            subprocess.Popen([*cli, "serve", "--host", host, "--port", str(port), "--workers", str(workers)], env=env)
        )
        children.append(subprocess.Popen([*cli, "ledger"], env=env))
        children.append(subprocess.Popen([*cli, "scheduler"], env=env))
        while all(c.poll() is None for c in children):
            try:
                children[0].wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        sys.exit(next(c.returncode for c in children if c.poll() is not None) or 0)
    except subprocess.CalledProcessError as exc:
        _fail(f"a start-up step failed: {' '.join(map(str, exc.cmd[3:]))} (exit {exc.returncode})")
    except KeyboardInterrupt:
        click.echo("\nstopping ...", err=True)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        for service in reversed(started):
            service.stop()


# the month's batches (issue 6), in their own module
from ledger import month_cli  # noqa: E402

for _command in month_cli.COMMANDS:
    main.add_command(_command)

from ledger import reconcile_cli  # noqa: E402

for _command in reconcile_cli.COMMANDS:  # reconcile, closing
    main.add_command(_command)

from ledger import credits_cli  # noqa: E402

for _command in credits_cli.COMMANDS:  # credits export, credits verify
    main.add_command(_command)


if __name__ == "__main__":
    main()
