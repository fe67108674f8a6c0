"""Redis down, two ways: the process stopped (connection refused) and the process hung
(SIGSTOP: connections open, nobody answers). Either way every Redis-backed endpoint answers
503 SERVICE_UNAVAILABLE within a bound set by CONVENIO_REDIS_TIMEOUT_MS, /readyz says not
ready, /healthz stays up; when Redis is back (same port, same AOF) the same app serves the
same balances again, and a hold retried with its Idempotency-Key is held exactly once.

This module runs a redis-server of its own (AOF, appendfsync always), so stopping and
freezing it disturbs no other test."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from gateway.platform.config import Settings
from gateway.platform.services import Services
from ledger.ops import demo, embedded
from tests.checkout import Terminal, assert_error, mint_proof

TIMEOUT_MS = 300
#: every answer while Redis is down: two socket timeouts and a second of slack
BOUND_S = 2 * TIMEOUT_MS / 1000 + 1
#: past this a request counts as hung; the test gives up waiting on it
HANG_S = 20.0
_prefixes = itertools.count()


@dataclass
class PrivateRedis:
    """A redis-server this module may stop, restart (same port, same data) and freeze."""

    data_dir: Path
    port: int
    server: embedded.EmbeddedRedis | None = None
    frozen: bool = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.server is not None and self.server.proc is not None
        return self.server.proc.pid

    def start(self) -> None:
        self.server = embedded.EmbeddedRedis(self.data_dir, appendfsync="always", port=self.port).start()

    def stop(self) -> None:
        self.thaw()
        if self.server is not None:
            self.server.stop()

    def running(self) -> bool:
        return self.server is not None and self.server.proc is not None and self.server.proc.poll() is None

    def freeze(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen and self.running():
            os.kill(self.pid, signal.SIGCONT)
        self.frozen = False

    def wait_answering(self, seconds: float = 10.0) -> None:
        """Until the server answers a PING of its own (a resumed one first serves its backlog)."""
        client = redis.Redis(port=self.port, socket_timeout=seconds)
        try:
            client.ping()
        finally:
            client.close()


@pytest.fixture(scope="module")
def private_redis() -> Iterator[PrivateRedis]:
    embedded.ensure_installed()
    root = Path(tempfile.mkdtemp(prefix="convenio-redis-down-", dir="/tmp"))
    root.chmod(0o755)
    redis = PrivateRedis(root / "redis", embedded.free_port())
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()  # thaws first: a stopped process would ignore SIGTERM until SIGCONT
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def down_settings(private_redis: PrivateRedis, shared_ledger_url: str) -> Settings:
    return Settings(
        redis_url=private_redis.url,
        database_url=shared_ledger_url,
        key_prefix=f"rd{os.getpid()}x{next(_prefixes)}",
        shards=4,
        pepper=b"test-pepper",
        password_threads=2,
        sweep_interval_ms=3_600_000,
        apikey_cache_s=0,
        redis_timeout_ms=TIMEOUT_MS,
    )


@pytest.fixture
async def down_app(private_redis: PrivateRedis, down_settings: Settings) -> AsyncIterator:
    from gateway.app import create_app

    if not private_redis.running():  # a test that failed half-way left it down
        private_redis.start()
    private_redis.thaw()
    application = create_app(down_settings)
    try:
        async with application.router.lifespan_context(application):
            yield application
    finally:
        private_redis.thaw()  # never leave a frozen server behind, whatever failed
        if not private_redis.running():
            await asyncio.to_thread(private_redis.start)


@pytest.fixture
async def terminal(down_app) -> AsyncIterator[Terminal]:
    svc: Services = down_app.state.services
    loaded = await demo.load(svc)
    transport = httpx.ASGITransport(app=down_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield Terminal(client, loaded)


# -- helpers ---------------------------------------------------------------------------------------
@dataclass
class Timed:
    what: str
    elapsed: float
    response: httpx.Response | None  # None: no answer within HANG_S

    def __str__(self) -> str:
        if self.response is None:
            return f"{self.what}: no answer after {self.elapsed:.2f} s"
        return f"{self.what}: {self.response.status_code} in {self.elapsed:.2f} s {self.response.text[:120]}"


async def timed(what: str, call: Callable[[], Awaitable[httpx.Response]]) -> Timed:
    started = time.perf_counter()
    try:
        response: httpx.Response | None = await asyncio.wait_for(call(), HANG_S)
    except TimeoutError:
        response = None
    return Timed(what, time.perf_counter() - started, response)


def check_unavailable(results: list[Timed]) -> None:
    """Every answer a 503 SERVICE_UNAVAILABLE within BOUND_S; all of them reported at once."""
    problems = []
    for t in results:
        if t.response is None or t.elapsed > BOUND_S:
            problems.append(f"{t}  (bound {BOUND_S:.2f} s)")
            continue
        try:
            assert_error(t.response, 503, "SERVICE_UNAVAILABLE")
        except AssertionError as exc:
            problems.append(f"{t}  ({exc})")
    assert not problems, "while Redis is down:\n" + "\n".join(problems)


async def outage_calls(t: Terminal, pending_id: str, hold_body: dict[str, Any], idem: str) -> list[Timed]:
    client = t.client
    results = [
        await timed("limit query", t.limit),
        await timed("password check", t.check_password),
        await timed("hold", lambda: t.hold(0, body=hold_body, idempotency_key=idem)),
        await timed("commit", lambda: t.commit(pending_id)),
        await timed("cancel", lambda: t.cancel(pending_id)),
        await timed("get empenho", lambda: t.get(pending_id)),
        await timed("readyz", lambda: client.get("/readyz")),
    ]
    health = await timed("healthz", lambda: client.get("/healthz"))
    assert health.response is not None and health.response.status_code == 200, str(health)
    assert health.elapsed < BOUND_S, str(health)
    return results


async def ready(t: Terminal) -> None:
    r = await t.client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready", r.text


async def before_outage(t: Terminal, svc: Services) -> tuple[dict[str, Any], str]:
    """The balance as it stands, with one PENDING hold of 1000 (the outage's commit/cancel/get target)."""
    r = await t.hold(1_000)
    assert r.status_code == 201, r.text
    # several connections in the pool, all of them stale once Redis restarts
    warm = await asyncio.gather(*(t.limit() for _ in range(8)))
    assert all(w.status_code == 200 for w in warm)
    snapshot = await t.limit()
    assert snapshot.status_code == 200, snapshot.text
    return snapshot.json(), r.json()["id"]


async def recovered(t: Terminal, snapshot: dict[str, Any], pending_id: str) -> None:
    """At once, without restarting the app: the same balance as before the outage, /readyz ready."""
    r = await t.limit()
    assert r.status_code == 200, r.text
    assert r.json() == snapshot
    await ready(t)
    got = await t.get(pending_id)
    assert got.status_code == 200 and got.json()["status"] == "PENDING", got.text


async def retried_once(t: Terminal, snapshot: dict[str, Any], body: dict[str, Any], idem: str) -> str:
    """Retry the hold that failed during the outage with the same Idempotency-Key: exactly
    one hold whatever Redis did with the first attempt."""
    first = await t.hold(0, body=body, idempotency_key=idem)
    assert first.status_code == 201, first.text
    again = await t.hold(0, body=body, idempotency_key=idem)
    assert again.status_code == 201, again.text
    assert again.headers.get("idempotent-replayed") == "true", again.headers
    assert again.json()["id"] == first.json()["id"]
    available = await t.available()
    assert available == snapshot["available"] - body["amount"], (
        f"available {available}, expected {snapshot['available']} - {body['amount']}: not exactly one hold"
    )
    view = await t.get(first.json()["id"])
    assert view.status_code == 200 and view.json()["status"] == "PENDING", view.text
    return first.json()["id"]


async def hold_and_commit(t: Terminal) -> None:
    before = await t.available()
    r = await t.hold(700)  # proof from a real password check
    assert r.status_code == 201, r.text
    done = await t.commit(r.json()["id"], amount=500)
    assert done.status_code == 200 and done.json()["status"] == "COMMITTED", done.text
    assert await t.available() == before - 500


# -- the tests -------------------------------------------------------------------------------------
async def test_redis_stopped_then_restarted(private_redis: PrivateRedis, down_app, terminal: Terminal) -> None:
    svc: Services = down_app.state.services
    t = terminal
    snapshot, pending_id = await before_outage(t, svc)
    body = t.sale(2_000, await mint_proof(svc, t.convenio, t.participant))
    idem = f"idem-stopped-{time.time_ns()}"

    await asyncio.to_thread(private_redis.stop)
    results = await outage_calls(t, pending_id, body, idem)

    await asyncio.to_thread(private_redis.start)  # same port, same data dir, AOF always
    check_unavailable(results)
    await recovered(t, snapshot, pending_id)
    await retried_once(t, snapshot, body, idem)
    await hold_and_commit(t)
    r = await t.commit(pending_id)
    assert r.status_code == 200 and r.json()["status"] == "COMMITTED", r.text


async def test_redis_hung_then_resumed(private_redis: PrivateRedis, down_app, terminal: Terminal) -> None:
    svc: Services = down_app.state.services
    t = terminal
    snapshot, pending_id = await before_outage(t, svc)

    # The hold's reserve script is sent, then Redis freezes: the gateway cannot know whether
    # it was applied (here it will be, once Redis resumes and reads what is waiting for it).
    run = svc.run

    async def freeze_on_reserve(name: str, keys: list[str], args: list[Any]) -> dict[str, Any]:
        if name == "empenho_hold":
            private_redis.freeze()
        return await run(name, keys, args)

    in_flight = t.sale(2_000, await mint_proof(svc, t.convenio, t.participant))
    body = t.sale(1_500, await mint_proof(svc, t.convenio, t.participant))
    idem = f"idem-hung-{time.time_ns()}"
    in_flight_idem = f"idem-inflight-{time.time_ns()}"
    svc.run = freeze_on_reserve  # type: ignore[method-assign]
    try:
        frozen_hold = await timed(
            "hold (frozen mid-call)", lambda: t.hold(0, body=in_flight, idempotency_key=in_flight_idem)
        )
        results = [frozen_hold]
    finally:
        svc.run = run  # type: ignore[method-assign]
    assert private_redis.frozen

    # Frozen from the start of each call: the API key lookup already waits, nothing is applied.
    results += await outage_calls(t, pending_id, body, idem)

    private_redis.thaw()
    check_unavailable(results)
    # once Redis has worked through what waited in its sockets (on a busy machine that can take
    # longer than the gateway's 300 ms timeout), at once, without restarting the app; the frozen
    # hold is either in (applied on resume) or not
    private_redis.wait_answering()
    r = await t.limit()
    assert r.status_code == 200, r.text
    assert r.json()["available"] in (snapshot["available"], snapshot["available"] - in_flight["amount"]), r.text
    await ready(t)
    await recovered_after_in_flight(t, snapshot, pending_id, in_flight, in_flight_idem)
    snapshot = (await t.limit()).json()
    await retried_once(t, snapshot, body, idem)
    await hold_and_commit(t)


async def recovered_after_in_flight(
    t: Terminal, snapshot: dict[str, Any], pending_id: str, body: dict[str, Any], idem: str
) -> None:
    """Resumed Redis may have applied the frozen hold; the retry replays it or places it, once."""
    first = await t.hold(0, body=body, idempotency_key=idem)
    assert first.status_code == 201, first.text
    again = await t.hold(0, body=body, idempotency_key=idem)
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"], again.text
    available = await t.available()
    assert available == snapshot["available"] - body["amount"], (
        f"available {available}, expected {snapshot['available']} - {body['amount']}: not exactly one hold"
    )
    got = await t.get(pending_id)
    assert got.status_code == 200 and got.json()["status"] == "PENDING", got.text
    done = await t.commit(first.json()["id"])
    assert done.status_code == 200 and done.json()["status"] == "COMMITTED", done.text
