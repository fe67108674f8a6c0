"""`convenio up` (what `./run` starts): the whole product on one machine. Private Redis and
Postgres under the data folder unless URLs are configured, the migrations, a rebuild when Redis
came back empty, the demo data, then the gateway, a ledger writer and the month's scheduler as
child processes; Ctrl-C stops everything it started."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from ledger import console
from ledger.ops import embedded

CLI = [sys.executable, "-m", "ledger.cli"]


def _pepper(data_dir: Path, name: str = "pepper") -> str:
    """The pepper (or the data key) kept beside the private servers' data (made on the first
    start); a production deployment keeps both apart from the databases and their backups."""
    path = data_dir / name
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


FIRST_OPERATOR = "admin"
ALL_PERMISSIONS = "603,1748,3183,3184,3185,3186,3187,9000,9010"


def _first_operator(env: dict[str, str]) -> str:
    """The first operator of a new install: created with every permission on the first start,
    its first password printed once (to be changed at the first login)."""
    made = subprocess.run(
        [*CLI, "operator", "create", FIRST_OPERATOR, "--permissions", ALL_PERMISSIONS, "--by", "convenio up"],
        env=env,
        capture_output=True,
        text=True,
    )
    if made.returncode == 0:
        return f"login: {FIRST_OPERATOR}  first password: {made.stdout.strip()}  (changed at the first login)"
    return (
        f"login: {FIRST_OPERATOR} (made on an earlier start; a new first password: "
        f"convenio operator reset-password {FIRST_OPERATOR})"
    )


def up(
    host: str,
    port: int,
    workers: int,
    data_dir: Path,
    env: dict[str, str],
    cluster_masters: int = 0,
    cluster_replicas: int = 0,
    writers: int = 0,
) -> None:
    """Run everything; `env` is the environment the children get (REDIS_URL and DATABASE_URL
    in it when servers are configured). `cluster_masters` > 0 starts a private Redis Cluster
    (with `cluster_replicas` per master) instead of one Redis server."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C, `kill` and service managers all mean "stop everything": also when the shell
    # that started us left SIGINT ignored (a background job) or sends SIGTERM.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    data_dir = data_dir.resolve()
    started: list[Any] = []
    children: list[subprocess.Popen] = []
    env = dict(env)
    try:
        if not env.get("REDIS_URL") or not env.get("DATABASE_URL"):
            console.guard(lambda: embedded.ensure_installed(lambda m: click.echo(m, err=True)))
        if not env.get("REDIS_URL") and cluster_masters:
            cluster = console.guard(
                lambda: embedded.EmbeddedRedisCluster(
                    data_dir / f"redis-cluster-{cluster_masters}x{cluster_replicas + 1}",
                    masters=cluster_masters,
                    replicas=cluster_replicas,
                ).start()
            )
            started.append(cluster)
            env["REDIS_URL"] = cluster.url
            env["CONVENIO_REDIS_CLUSTER_NODES"] = cluster.nodes
            click.echo(
                f"started a private Redis Cluster: {cluster_masters} masters, {cluster_replicas} replica(s) each "
                f"(AOF appendfsync always); REDIS_URL={cluster.url}",
                err=True,
            )
        elif not env.get("REDIS_URL"):
            redis = console.guard(lambda: embedded.EmbeddedRedis(data_dir / "redis").start())
            started.append(redis)
            env["REDIS_URL"] = redis.url
            click.echo(f"started private Redis (AOF appendfsync always) at {redis.url}", err=True)
        writers = writers or max(1, cluster_masters)
        if not env.get("DATABASE_URL"):
            pg = console.guard(lambda: embedded.EmbeddedPostgres(data_dir / "postgres").start())
            started.append(pg)
            env["DATABASE_URL"] = pg.url
            click.echo(f"started private Postgres at {pg.url} (data in {pg.data_dir})", err=True)
        if not env.get("CONVENIO_PEPPER") and not env.get("CONVENIO_PEPPER_FILE"):
            env["CONVENIO_PEPPER"] = _pepper(data_dir)
        if not env.get("CONVENIO_DATA_KEY") and not env.get("CONVENIO_DATA_KEY_FILE"):
            env["CONVENIO_DATA_KEY"] = _pepper(data_dir, "data_key")
        subprocess.run([*CLI, "migrate"], check=True, env=env)
        # Redis came back empty but the ledger remembers: restore before anything else writes
        subprocess.run([*CLI, "rebuild", "--if-empty"], check=True, env=env, stdout=subprocess.DEVNULL)
        loaded = subprocess.run([*CLI, "demo"], check=True, env=env, capture_output=True, text=True).stdout
        click.echo(loaded.strip())
        demo_data = json.loads(loaded)
        office = _first_operator(env)
        click.echo(
            f"\nGateway on http://{host}:{port}  (OpenAPI: /openapi.json). Ctrl-C stops everything.\n"
            "For the README's curl walk-through, paste in another shell:\n"
            f"  export B=http://{host}:{port} API_KEY={demo_data['api_key']} "
            f"PASSWORD={demo_data['password']} INTEGRATION_KEY={demo_data['integration_key']} "
            f"REDIS_URL={env['REDIS_URL']} DATABASE_URL={env['DATABASE_URL']}"
            + (f" CONVENIO_PEPPER_FILE={data_dir / 'pepper'}" if (data_dir / "pepper").exists() else "")
            + (f" CONVENIO_DATA_KEY_FILE={data_dir / 'data_key'}" if (data_dir / "data_key").exists() else "")
            + "\n"
            + f"\nBack office (Retaguarda) on http://{host}:{port}/backoffice  {office}\n",
            err=True,
        )
        children.append(
            subprocess.Popen([*CLI, "serve", "--host", host, "--port", str(port), "--workers", str(workers)], env=env)
        )
        for n in range(writers):  # they share the streams among themselves (ledger/writer/writer.py)
            children.append(subprocess.Popen([*CLI, "ledger", "--consumer", f"writer-{n + 1}"], env=env))
        children.append(subprocess.Popen([*CLI, "scheduler"], env=env))
        while all(c.poll() is None for c in children):
            try:
                children[0].wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        sys.exit(next(c.returncode for c in children if c.poll() is not None) or 0)
    except subprocess.CalledProcessError as exc:
        console.fail(f"a start-up step failed: {' '.join(map(str, exc.cmd[3:]))} (exit {exc.returncode})")
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
