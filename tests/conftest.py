"""Real, private servers for the whole session (a redis-server and a postgres of our own on
free ports), and for each test a fresh key prefix, app, clock and HTTP client."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.platform.config import Settings
from gateway.platform.services import Services
from ledger.ops import embedded
from tests.checkout import BackOffice, Clock, Terminal

_prefixes = itertools.count()


@pytest.fixture(scope="session")
def servers_root() -> Iterator[Path]:
    # /tmp, not pytest's tmp_path: as root, postgres runs as its own user and must reach it
    root = Path(tempfile.mkdtemp(prefix="convenio-test-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(servers_root: Path) -> Iterator[str]:
    """One private redis-server; with CONVENIO_TEST_REDIS=cluster a private 3-master Redis
    Cluster instead (./test runs the cluster's share of the suite that way)."""
    embedded.ensure_installed()
    if os.environ.get("CONVENIO_TEST_REDIS") == "cluster":
        server: Any = embedded.EmbeddedRedisCluster(servers_root / "cluster", masters=3, appendfsync="off").start()
    else:
        server = embedded.EmbeddedRedis(servers_root / "redis", appendfsync="off").start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def postgres_server(servers_root: Path) -> Iterator[embedded.EmbeddedPostgres]:
    embedded.ensure_installed()
    server = embedded.EmbeddedPostgres(servers_root / "postgres", durable=False).start()
    yield server
    server.stop()


def _database(server: embedded.EmbeddedPostgres, name: str) -> str:
    return server.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def ledger_template(postgres_server: embedded.EmbeddedPostgres) -> str:
    """A migrated database that each ledger test copies (CREATE DATABASE ... TEMPLATE)."""
    from ledger.ops.migrate import migrate

    url = _database(postgres_server, "ledger_template")
    asyncio.run(migrate(url))
    return url


@pytest.fixture(scope="session")
def shared_ledger_url(postgres_server: embedded.EmbeddedPostgres, ledger_template: str) -> str:
    """The database behind every test's gateway unless the test asks for a fresh one."""
    return asyncio.run(_copy(postgres_server, "ledger_shared"))


async def _copy(server: embedded.EmbeddedPostgres, name: str) -> str:
    conn = await asyncpg.connect(_database(server, "postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE ledger_template')
    finally:
        await conn.close()
    return _database(server, name)


@pytest.fixture
async def ledger_url(postgres_server: embedded.EmbeddedPostgres, ledger_template: str, svc: Services) -> str:
    """A fresh, migrated ledger database of this test's own; the test's gateway reads it."""
    from gateway.platform.postgres import LedgerDB

    url = await _copy(postgres_server, f"ledger_{uuid.uuid4().hex[:12]}")
    await svc.ledger.close()
    svc.settings = dataclasses.replace(svc.settings, database_url=url)
    svc.ledger = LedgerDB(url)
    return url


@pytest.fixture
async def blank_ledger_url(postgres_server: embedded.EmbeddedPostgres, ledger_template: str) -> str:
    """A fresh, migrated ledger database for a test that builds its own gateway."""
    return await _copy(postgres_server, f"ledger_{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def ledger(ledger_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A connection pool on the test's own ledger database."""
    pool = await asyncpg.create_pool(ledger_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
def settings(redis_url: str, shared_ledger_url: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        database_url=shared_ledger_url,
        key_prefix=f"t{os.getpid()}x{next(_prefixes)}",
        shards=4,
        pepper=b"test-pepper",
        data_key=b"test-data-key",
        password_threads=2,
        sweep_interval_ms=3_600_000,  # tests sweep by hand, with their own clock
        apikey_cache_s=0,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator:
    from gateway.app import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def svc(app) -> Services:
    return app.state.services


@pytest.fixture
def clock(svc: Services) -> Clock:
    c = Clock()
    svc.clock = c
    return c


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        yield c


@pytest.fixture
async def backoffice(svc: Services, client: httpx.AsyncClient) -> BackOffice:
    return await BackOffice.create(svc, client)


@pytest.fixture
async def seed(svc: Services, client: httpx.AsyncClient, clock: Clock) -> Terminal:
    """The worked example: EMP001 / CLI001, limit R$ 100,00 + R$ 10,00 tolerance."""
    from ledger.ops import demo

    loaded = await demo.load(svc)
    return Terminal(client, loaded)
