"""The operator CLI as operators' scripts call it: real processes, real servers."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from gateway.platform.redis.keys import Keys
from ledger.ops import embedded

CLI = [sys.executable, "-m", "ledger.cli"]


@pytest.fixture
def cli_env(redis_url: str, postgres_server) -> dict[str, str]:
    database = f"cli_{uuid.uuid4().hex[:8]}"
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": postgres_server.url.rsplit("/", 1)[0] + "/" + database,
        "CONVENIO_KEY_PREFIX": f"cli{uuid.uuid4().hex[:8]}",
        "CONVENIO_SHARDS": "4",
        "CONVENIO_PEPPER": "cli-test-pepper",
    }


MIGRATIONS = sorted(f.name.split("_", 1)[0] for f in Path("sql").glob("[0-9][0-9][0-9]_*.sql"))


def convenio(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)


async def test_migrate_from_empty_then_again_changes_nothing(cli_env) -> None:
    first = convenio(cli_env, "migrate")
    assert first.returncode == 0, first.stderr
    assert "applied 001_journal.sql" in first.stderr
    assert "applied 002_projections.sql" in first.stderr
    again = convenio(cli_env, "migrate")
    assert again.returncode == 0
    assert "0 migration(s) applied" in again.stderr
    conn = await asyncpg.connect(cli_env["DATABASE_URL"])
    try:
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == MIGRATIONS and len(MIGRATIONS) >= 2
        for table in ("journal", "convenios", "participants", "empenhos", "decisions", "movements"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0
    finally:
        await conn.close()


def test_apikey_create_prints_the_key_alone_and_revoke_takes_it_away(cli_env) -> None:
    created = convenio(cli_env, "apikey", "create", "--permissions", "3183,3184", "--name", "PDV loja 1")
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cvk_")
    key_id = created.stderr.split("api key id ")[1].split()[0]

    bad = convenio(cli_env, "apikey", "create", "--permissions", "3183,42")
    assert bad.returncode == 2
    assert "unknown permission" in bad.stderr

    assert convenio(cli_env, "apikey", "revoke", key_id).returncode == 0
    unknown = convenio(cli_env, "apikey", "revoke", "k-nope")
    assert unknown.returncode == 1
    assert "No API key" in unknown.stderr


def test_demo_prints_the_same_example_every_time(cli_env) -> None:
    first = convenio(cli_env, "demo")
    assert first.returncode == 0, first.stderr
    loaded = json.loads(first.stdout)
    assert set(loaded) == {"convenio", "participant", "password", "integration_key", "api_key"}
    assert (loaded["convenio"], loaded["participant"]) == ("EMP001", "CLI001")
    assert json.loads(convenio(cli_env, "demo").stdout) == loaded
    other = json.loads(convenio(cli_env, "demo", "--convenio", "EMP777", "--participant", "CLI777").stdout)
    assert (other["convenio"], other["participant"]) == ("EMP777", "CLI777")


def test_a_missing_redis_is_one_clear_line_and_exit_3(cli_env) -> None:
    env = {**cli_env, "REDIS_URL": f"redis://127.0.0.1:{embedded.free_port()}/0"}
    r = convenio(env, "demo")
    assert r.returncode == 3
    assert "cannot reach Redis" in r.stderr
    assert "Traceback" not in r.stderr


def test_up_runs_the_product_and_ctrl_c_stops_everything(tmp_path_factory) -> None:
    """What `./run` does: private servers, migrations, demo, gateway; Ctrl-C ends it all."""
    data = Path(tmp_path_factory.mktemp("up"))
    port = embedded.free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "CONVENIO_PEPPER")}
    proc = subprocess.Popen(
        [*CLI, "up", "--port", str(port), "--data-dir", str(data)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        demo = json.loads(proc.stdout.readline())
        headers = {"Authorization": f"Bearer {demo['api_key']}"}
        url = f"http://127.0.0.1:{port}/v1/convenios/EMP001/participants/CLI001/limit"
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(url, headers=headers, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "gateway did not come up"
                time.sleep(0.2)
        assert r.status_code == 200
        assert r.json()["available"] == 11000
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    log = proc.stderr.read()
    assert "/backoffice  login: admin  first password: " in log  # the back office, and who logs in first
    pg_data = log.split("(data in ")[1].split(")")[0]
    try:
        for folder in (str(data), pg_data):
            leftovers = subprocess.run(["pgrep", "-f", folder], capture_output=True, text=True).stdout.split()
            assert leftovers == [], f"servers under {folder} left running after Ctrl-C"
    finally:
        if pg_data.startswith("/var/tmp/convenio-postgres-"):
            shutil.rmtree(pg_data, ignore_errors=True)


def journal_rows(url: str) -> list[tuple[str, str]]:
    async def fetch() -> list[tuple[str, str]]:
        conn = await asyncpg.connect(url)
        try:
            return [(r["type"], r["d"]) for r in await conn.fetch("SELECT type, data::text AS d FROM journal")]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_the_ledger_daemon_stores_the_demo_and_stops_on_sigterm(cli_env) -> None:
    assert convenio(cli_env, "migrate").returncode == 0
    demo = json.loads(convenio(cli_env, "demo").stdout)
    proc = subprocess.Popen([*CLI, "ledger", "--consumer", "cli-test"], env=cli_env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not any(t == "participant.created" for t, _ in journal_rows(cli_env["DATABASE_URL"])):
            assert time.monotonic() < deadline, "the demo's events never reached the journal"
            time.sleep(0.1)
        rows = journal_rows(cli_env["DATABASE_URL"])
        assert {"convenio.created", "participant.created", "apikey.created"} <= {t for t, _ in rows}
        for secret in (demo["password"], demo["api_key"], demo["integration_key"]):
            assert all(secret not in d for _, d in rows), "a secret reached the journal"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert "stopped" in proc.stderr.read()


def redis_of(env: dict[str, str]):
    import redis

    return redis.Redis.from_url(env["REDIS_URL"])


def test_verify_finds_no_drift_after_the_demo_and_names_a_drift_to_the_centavo(cli_env) -> None:
    assert convenio(cli_env, "migrate").returncode == 0
    assert convenio(cli_env, "demo").returncode == 0
    stored = convenio(cli_env, "ledger", "--once")
    assert stored.returncode == 0, stored.stderr
    clean = convenio(cli_env, "verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "no drift" in clean.stdout

    # someone moves R$ 2,50 in Redis behind the ledger's back
    r = redis_of(cli_env)
    key = Keys(cli_env["CONVENIO_KEY_PREFIX"], 4).participant("EMP001", "CLI001")
    assert r.hincrby(key, "balance", 250) == 10250
    drift = convenio(cli_env, "verify", "--wait", "0")
    assert drift.returncode == 1
    assert "DRIFT convênio EMP001 participant CLI001: balance: redis 10250, postgres 10000" in drift.stdout
    assert "250 centavos (R$ 2,50)" in drift.stdout
    as_json = json.loads(convenio(cli_env, "verify", "--wait", "0", "--json").stdout)
    assert as_json["drift"] is True
    assert {"convenio": "EMP001", "participant": "CLI001", "field": "balance", "redis": 10250, "postgres": 10000} in (
        as_json["differences"]
    )


def test_rebuild_refuses_a_redis_with_data_and_restores_one_that_lost_it(cli_env) -> None:
    assert convenio(cli_env, "migrate").returncode == 0
    demo = json.loads(convenio(cli_env, "demo").stdout)
    assert convenio(cli_env, "ledger", "--once").returncode == 0
    refused = convenio(cli_env, "rebuild")
    assert refused.returncode == 1
    assert "--force" in refused.stderr

    r = redis_of(cli_env)
    r.delete(*r.keys(f"{cli_env['CONVENIO_KEY_PREFIX']}:*"))
    rebuilt = convenio(cli_env, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "1 participants" in rebuilt.stdout
    assert convenio(cli_env, "verify", "--wait", "0").returncode == 0
    # the demo's credentials work again: `demo` finds everything in place and changes nothing
    assert json.loads(convenio(cli_env, "demo").stdout) == demo
