"""Real, private servers for the whole session (a redis-server and a postgres of our own on
free ports), and for each test a fresh key prefix, app, clock and HTTP client."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from gateway.config import Settings
from gateway.core import Gateway
from ledger import embedded
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
    embedded.ensure_installed()
    server = embedded.EmbeddedRedis(servers_root / "redis", appendfsync="off").start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def postgres_server(servers_root: Path) -> Iterator[embedded.EmbeddedPostgres]:
    embedded.ensure_installed()
    server = embedded.EmbeddedPostgres(servers_root / "postgres", durable=False).start()
    yield server
    server.stop()


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        key_prefix=f"t{os.getpid()}x{next(_prefixes)}",
        shards=4,
        pepper=b"test-pepper",
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
def gw(app) -> Gateway:
    return app.state.gateway


@pytest.fixture
def clock(gw: Gateway) -> Clock:
    c = Clock()
    gw.clock = c
    return c


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as c:
        yield c


@pytest.fixture
async def backoffice(gw: Gateway, client: httpx.AsyncClient) -> BackOffice:
    return await BackOffice.create(gw, client)


@pytest.fixture
async def seed(gw: Gateway, client: httpx.AsyncClient, clock: Clock) -> Terminal:
    """Seed 001's example: EMP001 / CLI001, limit R$ 100,00 + R$ 10,00 tolerance."""
    from ledger import demo

    loaded = await demo.load(gw)
    return Terminal(client, loaded)
