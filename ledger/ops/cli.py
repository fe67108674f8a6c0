"""The operations commands: migrate, serve, apikey, demo, verify, rebuild, up, and the customers'
credits (finance's export and their drift check)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

import click
import msgspec

from gateway.auth import apikeys
from gateway.auth.permissions import parse
from gateway.credits import export as credit_export
from gateway.platform.clock import BRAZIL_ZONES, rfc3339
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.services import Services
from gateway.stores import stores
from gateway.stores.schemas import StoreCreate, StoreUpdate
from ledger import console
from ledger.ops import demo as demo_data
from ledger.ops import migrate as migrations
from ledger.ops import rebuild as recovery
from ledger.ops import up as local
from ledger.ops import verify as checks


@click.command()
def migrate() -> None:
    """Apply the SQL migrations not applied yet (safe to repeat)."""
    applied = console.guard(lambda: console.run(migrations.migrate(console.settings().database_url)))
    for name in applied:
        click.echo(f"applied {name}", err=True)
    click.echo(f"{len(applied)} migration(s) applied; the database is up to date.", err=True)


_PEM = click.Path(exists=True, dir_okay=False, resolve_path=True)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--tls-cert", type=_PEM, help="Serve HTTPS with this certificate (PEM, chain after it). [CONVENIO_TLS_CERT]"
)
@click.option("--tls-key", type=_PEM, help="Its private key (PEM), unless in --tls-cert's file. [CONVENIO_TLS_KEY]")
@click.option(
    "--tls-client-ca",
    type=_PEM,
    help="Require of every terminal a certificate this CA issued; a store's key then acts only through "
    "its store's certificates (docs/tls.md). [CONVENIO_TLS_CLIENT_CA]",
)
def serve(
    host: str,
    port: int,
    workers: int,
    log_level: str,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
) -> None:
    """Run the gateway (HTTP API for terminals and back-office), over HTTPS with --tls-cert."""
    from gateway.platform.http import tls  # uvicorn's protocols: only serve needs them

    settings = console.settings()
    console.guard(settings.secret_pepper)  # fail here, clearly, not in every worker
    given = {"tls_cert": tls_cert, "tls_key": tls_key, "tls_client_ca": tls_client_ca}
    settings = dataclasses.replace(settings, **{name: value for name, value in given.items() if value})
    if (settings.tls_key or settings.tls_client_ca) and not settings.tls_cert:
        raise click.UsageError("--tls-key and --tls-client-ca need --tls-cert (or CONVENIO_TLS_CERT)")
    if settings.tls_cert:
        try:  # here, in one line, rather than in every worker
            tls.server_context(settings)
        except (OSError, ValueError) as exc:
            console.fail(f"cannot load the TLS certificate, key or client CA: {exc}")
    # The server runs as this process, made anew with the settings in its environment: its
    # workers (uvicorn's processes, started from the factory's name) read them from there.
    env = {**os.environ, **settings.environment()}
    if workers > 1:
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="convenio-metrics-"))
    argv = ["--host", host, "--port", str(port), "--workers", str(workers), "--log-level", log_level]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-c", "from gateway.app import main; main()", *argv], env)  # noqa: S606


@click.group()
def apikey() -> None:
    """Create, list, rotate and revoke API keys (stored hashed; a key is shown once)."""


@apikey.command("create")
@click.option("--permissions", required=True, help="Comma-separated codes, e.g. 3183,3184,3185,3186.")
@click.option("--name", default="", help="Who or what the key is for.")
@click.option("--store", default=None, help="Scope the key to this store: it may act for no other.")
@click.option("--terminal", default=None, help="Scope it to this terminal of the store too (needs --store).")
@console.by_option
def apikey_create(permissions: str, name: str, store: str | None, terminal: str | None, by: str) -> None:
    """Print a new API key alone on stdout (its id goes to stderr)."""
    try:
        perms = parse(permissions)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--permissions") from None
    if not perms:
        raise click.BadParameter("give at least one permission code", param_hint="--permissions")
    if terminal and not store:
        raise click.BadParameter("a terminal belongs to a store: give --store too", param_hint="--terminal")

    async def create(svc: Services) -> tuple[str, apikeys.ApiKey]:
        if store:
            known = await stores.get(svc, store)  # UNKNOWN_STORE when it is not registered
            if terminal and terminal not in {t.code for t in known.terminals}:
                raise ApiError(ErrorCode.UNKNOWN_STORE, f"Store {store} has no terminal {terminal}.")
        return await apikeys.create(svc, perms, name, store=store, terminal=terminal, by=f"cli:{by}")

    try:
        token, key = console.call(create)
    except ApiError as exc:
        console.fail(exc.message)
    scope = f" for store {key.store}" + (f", terminal {key.terminal}" if key.terminal else "") if key.store else ""
    click.echo(
        f"api key id {key.id} with permissions {','.join(str(int(p)) for p in sorted(key.permissions))}{scope}",
        err=True,
    )
    click.echo(token)


@apikey.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key.")
def apikey_list(as_json: bool) -> None:
    """Every API key: id, name, permissions, scope, lineage, created, last used, revoked or expiring
    (never the key)."""
    found = console.call(apikeys.listing)
    if as_json:
        for k in found:
            click.echo(json.dumps({name: getattr(k, name) for name in k.__dataclass_fields__}))
        return

    def when(ms: int | None) -> str:
        return rfc3339(ms)[:19] if ms else "—"

    for k in found:
        scope = k.store + (f"/{k.terminal}" if k.terminal else "") if k.store else "(any store)"
        state = (
            f"revoked {when(k.revoked_at)}"
            if k.revoked_at
            else (f"valid until {when(k.expires_at)}" if k.expires_at else "active")
        )
        lineage = f"  rotated from {k.lineage}" if k.lineage != k.id else ""
        click.echo(
            f"{k.id}  {k.name or '-'}  {k.permissions}  {scope}  created {when(k.created_at)}"
            f"  last used {when(k.last_used_at)}  {state}{lineage}"
        )
    click.echo(f"{len(found)} key(s)", err=True)


@apikey.command("rotate")
@click.argument("key_id")
@click.option(
    "--grace",
    "grace_s",
    default=86_400,
    show_default=True,
    type=click.IntRange(0, 90 * 86_400),
    help="Seconds the old key keeps working, while terminals switch to the new one.",
)
@console.by_option
def apikey_rotate(key_id: str, grace_s: int, by: str) -> None:
    """Print a new key for KEY_ID alone on stdout: the same permissions, name and scope; the old one
    works --grace seconds more. A request retried with the new key under the same Idempotency-Key
    replays the old key's answer."""
    try:
        token, key, until = console.call(lambda svc: apikeys.rotate(svc, key_id, grace_s, by=f"cli:{by}"))
    except ApiError as exc:
        console.fail(exc.message)
    click.echo(f"api key id {key.id} replaces {key_id}, which works until {rfc3339(until)}", err=True)
    click.echo(token)


@apikey.command("revoke")
@click.argument("key_id")
@console.by_option
def apikey_revoke(key_id: str, by: str) -> None:
    """Revoke the API key with this id (as `apikey create` printed it)."""
    try:
        console.call(lambda svc: apikeys.revoke(svc, key_id, by=f"cli:{by}"))
    except ApiError as exc:
        console.fail(exc.message)
    click.echo(f"revoked {key_id}", err=True)


@click.group("store")
def store() -> None:
    """Register stores (lojas) and their terminals (PDVs)."""


@store.command("create")
@click.argument("code")
@click.option("--name", required=True)
@click.option("--time-zone", default="America/Sao_Paulo", show_default=True, type=click.Choice(BRAZIL_ZONES))
@console.by_option
def store_create(code: str, name: str, time_zone: str, by: str) -> None:
    """Register the store CODE."""
    try:
        body = msgspec.convert({"code": code, "name": name, "time_zone": time_zone}, StoreCreate)
    except msgspec.ValidationError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        saved = console.call(lambda svc: stores.save(svc, code, body, by=f"cli:{by}"))
    except ApiError as exc:
        console.fail(exc.message)
    click.echo(f"store {saved.code} ({saved.name}, {saved.time_zone}) {saved.status}", err=True)


@store.command("update")
@click.argument("code")
@click.option("--name", default=None)
@click.option("--time-zone", default=None, type=click.Choice(BRAZIL_ZONES))
@click.option("--status", default=None, type=click.Choice(["ACTIVE", "BLOCKED"]))
@console.by_option
def store_update(code: str, name: str | None, time_zone: str | None, status: str | None, by: str) -> None:
    """Change the store CODE's name, time zone or status (a BLOCKED store's keys can do nothing)."""
    body = StoreUpdate(name=name, time_zone=time_zone, status=status)  # type: ignore[arg-type]
    try:
        saved = console.call(lambda svc: stores.save(svc, code, body, by=f"cli:{by}"))
    except ApiError as exc:
        console.fail(exc.message)
    click.echo(f"store {saved.code} ({saved.name}, {saved.time_zone}) {saved.status}", err=True)


@store.command("terminal")
@click.argument("code")
@click.argument("terminal")
@click.option("--blocked", is_flag=True, help="Block it (its keys can do nothing); without: register or unblock.")
@console.by_option
def store_terminal(code: str, terminal: str, blocked: bool, by: str) -> None:
    """Register the terminal TERMINAL of the store CODE, or block or unblock it."""
    status = "BLOCKED" if blocked else "ACTIVE"
    try:
        console.call(lambda svc: stores.save_terminal(svc, code, terminal, status, by=f"cli:{by}"))
    except ApiError as exc:
        console.fail(exc.message)
    click.echo(f"terminal {code}/{terminal} {status}", err=True)


@store.command("list")
def store_list() -> None:
    """Every store with its terminals."""
    for st in console.call(stores.listing).stores:
        terminals = ", ".join(f"{t.code}{'' if t.status == 'ACTIVE' else ' (blocked)'}" for t in st.terminals)
        click.echo(f"{st.code}  {st.name}  {st.time_zone}  {st.status}  terminals: {terminals or '—'}")


@click.command()
@click.option("--convenio", default="EMP001", show_default=True)
@click.option("--participant", default="CLI001", show_default=True)
def demo(convenio: str, participant: str) -> None:
    """Load the worked example (convênio EMP001, participant CLI001) and print it as JSON
    (repeatable: changes nothing twice)."""
    loaded = console.call(lambda svc: demo_data.load(svc, convenio, participant))
    click.echo(json.dumps(loaded))


@click.command()
@click.option("--wait", "wait_s", default=10.0, show_default=True, help="Seconds to wait for the ledger to catch up.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def verify(wait_s: float, as_json: bool) -> None:
    """Compare Redis with Postgres, and the journal with both, per convênio and participant,
    to the centavo. Exit 0: no drift; 1: drift (every difference printed); 3: a service is down."""
    report = console.call_ledger(lambda svc, conn: checks.recorded(svc, conn, wait_s, by=console.operator()))
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
    sys.exit(console.EXIT_FAILURE if report.drift else 0)


@click.command()
@click.option("--force", is_flag=True, help="Clear the product's keys first when Redis is not empty.")
@click.option("--if-empty", is_flag=True, help="Do nothing (exit 0) when Redis has data; `./run` starts with this.")
def rebuild(force: bool, if_empty: bool) -> None:
    """Rebuild Redis from Postgres after Redis lost its data: registry, balances, password
    hashes, pending holds, credits and idempotency answers. Refuses a Redis with data unless --force."""
    if if_empty and console.call(recovery.product_keys):
        click.echo("Redis has data; nothing to rebuild", err=True)
        return

    def progress(what: str, n: int) -> None:
        click.echo(f"  {what}: {n}", err=True)

    try:
        done = console.call_ledger(lambda svc, conn: recovery.rebuild(svc, conn, force, progress))
    except recovery.RedisNotEmpty as exc:
        console.fail(str(exc))
    summary = ", ".join(f"{n} {what}" for what, n in done.counts.items()) or "nothing (the ledger is empty)"
    click.echo(f"rebuilt Redis from the ledger: {summary}")


@click.command()
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
@click.option(
    "--redis-cluster",
    "cluster_masters",
    default=0,
    type=click.IntRange(0, 16),
    metavar="MASTERS",
    help="Without REDIS_URL: start a private Redis Cluster of this many masters instead of one server.",
)
@click.option(
    "--redis-replicas",
    default=0,
    show_default=True,
    type=click.IntRange(0, 3),
    help="With --redis-cluster: replicas per master (failover; see CONVENIO_REPLICA_ACKS).",
)
@click.option(
    "--writers",
    default=0,
    type=click.IntRange(0, 64),
    help="Ledger writers to run (they share the event streams). Default: one, or one per master on a cluster.",
)
def up(
    host: str, port: int, workers: int, data_dir: Path, cluster_masters: int, redis_replicas: int, writers: int
) -> None:
    """Run the whole product locally: services (private ones when REDIS_URL/DATABASE_URL are
    unset), migrations, the demo data, the gateway, the ledger writer and the month's
    scheduler. Ctrl-C stops everything it started."""
    # the services named by the group's options (or the environment) are used; the others started
    options = click.get_current_context().find_root().params
    env = {**os.environ}
    for var, value in (("REDIS_URL", options.get("redis_url")), ("DATABASE_URL", options.get("database_url"))):
        if value:
            env[var] = value
    local.up(host, port, workers, data_dir, env, cluster_masters, redis_replicas, writers)


# -- the customers' current accounts --------------------------------------------------------------
@click.group()
def credits() -> None:
    """The customers' current accounts: finance's export, and a drift check."""


@credits.command("export")
@click.option("--from", "start", required=True, type=console.DAY, help="First local day (America/Sao_Paulo).")
@click.option("--to", "end", required=True, type=console.DAY, help="Last local day, included.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), help="Write here instead of stdout.")
def export(start, end, fmt: str, output: str | None) -> None:  # noqa: ANN001 - click's dates
    """Every debit and credit of the period, with each credit's reference and type: one line per
    credit touched (CREDIT registered, DEBIT an order's committed part, RETURN a returned
    order's part), amounts in integer centavos; JSON adds the totals per type."""
    if end < start:
        raise click.BadParameter("must not be before --from", param_hint="--to")
    exported = console.call_postgres(lambda conn: credit_export.export(conn, start, end))
    text = credit_export.as_csv(exported) if fmt == "csv" else json.dumps(exported, ensure_ascii=False) + "\n"
    if output:
        with open(output, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    else:
        click.echo(text, nl=False)
    totals = exported["totals"]
    click.echo(
        f"{totals['count']} movement(s) from {start} to {end}: credits {totals['credits']}, "
        f"debits {totals['debits']} centavos",
        err=True,
    )


@credits.command("verify")
@click.option("--wait", "wait_s", default=10.0, show_default=True, help="Seconds to wait for the ledger to catch up.")
def credits_verify(wait_s: float) -> None:
    """Compare every credit's remaining and every PENDING credit hold in Redis with the ledger.
    Exit 0: no drift; 1: drift (each difference printed)."""

    async def go(svc, conn):  # noqa: ANN001, ANN202
        lag = await checks.wait_for_ledger(svc, wait_s)
        return lag, await checks.credit_drift(svc, conn)

    lag, lines = console.call_ledger(go)
    for line in lines:
        click.echo(line)
    if lag:
        click.echo(f"note: {lag} events were not stored yet; differences may be in flight", err=True)
    click.echo(f"DRIFT: {len(lines)} difference(s)" if lines else "no drift in the customers' credits")
    sys.exit(console.EXIT_FAILURE if lines else 0)


COMMANDS = (migrate, serve, apikey, store, demo, verify, rebuild, up, credits)
