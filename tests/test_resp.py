"""The hot path's Redis client (gateway/platform/redis/resp.py) against a real redis-server of this module's
own, which it may stop, restart and freeze: replies reach the caller that asked, whatever the
concurrency; scripts reload after NOSCRIPT; a broken or silent Redis fails every waiting call
with redis-py's exceptions within the timeout, and the next call connects again by itself."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, NoScriptError, ResponseError, TimeoutError

from gateway.platform.http.edge import UNAVAILABLE
from gateway.platform.redis.resp import Resp
from ledger.ops import embedded

TIMEOUT = 0.3
#: a failing call answers within its timeout and this much slack
SLACK = 0.5


class Server:
    """A redis-server on a fixed port that the tests may stop, start again and freeze."""

    def __init__(self, root: Path) -> None:
        self.port = embedded.free_port()
        self.redis = embedded.EmbeddedRedis(root, appendfsync="off", port=self.port)
        self.frozen = False

    @property
    def url(self) -> str:
        return self.redis.url

    def start(self) -> None:
        if self.redis.proc is None or self.redis.proc.poll() is not None:
            self.redis.start()

    def stop(self) -> None:
        self.thaw()
        self.redis.stop()

    def freeze(self) -> None:
        assert self.redis.proc is not None
        os.kill(self.redis.proc.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen and self.redis.proc is not None and self.redis.proc.poll() is None:
            os.kill(self.redis.proc.pid, signal.SIGCONT)
        self.frozen = False


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    embedded.ensure_installed()
    root = Path(tempfile.mkdtemp(prefix="convenio-resp-", dir="/tmp"))
    s = Server(root / "redis")
    s.start()
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def resp(server: Server) -> AsyncIterator[Resp]:
    server.thaw()
    server.start()  # a test that failed half-way may have left it down
    client = Resp.from_url(server.url, timeout=TIMEOUT)
    yield client
    server.thaw()
    await client.aclose()


@pytest.fixture
async def other(server: Server) -> AsyncIterator[Redis]:
    """redis-py on the same server: a second opinion, and a way to act on our connection."""
    r = Redis.from_url(server.url, socket_timeout=5)
    yield r
    await r.aclose()


def sha(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


async def test_commands_and_replies(resp: Resp, other: Redis) -> None:
    assert await resp.command("SET", "resp:a", "R$ 5,78") == b"OK"
    assert await other.get("resp:a") == b"R$ 5,78"
    assert await resp.command("SET", "resp:a", "x", "NX", "GET", "EX", 60) == b"R$ 5,78"  # the claim's form
    assert await resp.command("GET", "resp:missing") is None
    assert await resp.command("INCRBY", "resp:n", 578) == 578
    assert await resp.command("RPUSH", "resp:l", b"\x00\xff", 1.5) == 2
    assert await resp.command("LRANGE", "resp:l", 0, -1) == [b"\x00\xff", b"1.5"]
    with pytest.raises(TypeError):
        await resp.command("SET", "resp:a", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await resp.command("SET", "resp:a", True)  # type: ignore[arg-type]


async def test_error_replies_raise_and_leave_the_connection_usable(resp: Resp) -> None:
    await resp.command("SET", "resp:s", "text")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await resp.command("LPUSH", "resp:s", "x")
    with pytest.raises(ResponseError, match="unknown command"):
        await resp.command("NOSUCHCOMMAND")
    assert await resp.command("GET", "resp:s") == b"text"


async def test_each_concurrent_caller_gets_its_own_reply(resp: Resp) -> None:
    values = [f"v{i}".encode() * (1 + i % 50) for i in range(2_000)]  # some replies span reads
    got = await asyncio.gather(*(resp.command("ECHO", v) for v in values))
    assert got == values


async def test_a_cancelled_caller_does_not_shift_the_replies(resp: Resp) -> None:
    tasks = [asyncio.create_task(resp.command("ECHO", f"c{i}")) for i in range(20)]
    await asyncio.sleep(0)  # every command is on its way
    for t in tasks[::2]:
        t.cancel()
    rest = await asyncio.gather(*tasks[1::2])
    assert rest == [f"c{i}".encode() for i in range(1, 20, 2)]
    assert await resp.command("ECHO", "after") == b"after"


async def test_evalsha_loads_a_script_redis_forgot(resp: Resp, other: Redis) -> None:
    text = "return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}"
    await other.script_flush()
    assert await resp.evalsha(sha(text), text, ["resp:k"], ["a", 577]) == [b"resp:k", b"a", 578]
    assert await resp.evalsha(sha(text), text, ["resp:k"], ["b", 1]) == [b"resp:k", b"b", 2]  # now known
    await other.script_flush()  # as after a restart
    assert await resp.evalsha(sha(text), text, ["resp:k"], ["c", 2]) == [b"resp:k", b"c", 3]
    with pytest.raises(NoScriptError):
        await resp.command("EVALSHA", sha("return 0"), 0)


async def test_a_script_error_is_a_response_error(resp: Resp) -> None:
    text = "return redis.call('LPUSH', KEYS[1], 'x')"
    await resp.command("SET", "resp:str", "v")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await resp.evalsha(sha(text), text, ["resp:str"], [])
    assert await resp.command("PING") == b"PONG"


async def test_connection_killed_fails_every_waiting_call_then_reconnects(resp: Resp, other: Redis) -> None:
    my_id = await resp.command("CLIENT", "ID")
    # BLPOP holds the connection; the commands queued behind it wait on it too
    blocked = [asyncio.create_task(resp.command("BLPOP", "resp:never", 0))]
    blocked += [asyncio.create_task(resp.command("ECHO", f"q{i}")) for i in range(5)]
    await asyncio.sleep(0.05)
    assert await other.client_kill_filter(_id=my_id) == 1
    results = await asyncio.wait_for(asyncio.gather(*blocked, return_exceptions=True), 2)
    assert all(isinstance(r, ConnectionError) for r in results), results
    assert await resp.command("ECHO", "again") == b"again"
    assert await resp.command("CLIENT", "ID") != my_id


async def test_no_answer_within_the_timeout_fails_every_waiting_call(resp: Resp) -> None:
    assert await resp.command("PING") == b"PONG"
    started = time.monotonic()
    calls = [resp.command("BLPOP", "resp:never", 0)] + [resp.command("ECHO", f"t{i}") for i in range(5)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert time.monotonic() - started < TIMEOUT + SLACK
    assert isinstance(results[0], TimeoutError), results
    assert all(isinstance(r, TimeoutError | ConnectionError) for r in results), results
    assert await resp.command("ECHO", "fresh") == b"fresh"  # a new connection: BLPOP is gone with the old


async def test_redis_stopped_then_restarted(server: Server, resp: Resp) -> None:
    assert await resp.command("SET", "resp:kept", "1") == b"OK"
    await asyncio.to_thread(server.stop)
    for _ in range(3):  # the broken connection, then refused connections
        started = time.monotonic()
        with pytest.raises(ConnectionError) as caught:
            await resp.command("GET", "resp:kept")
        assert time.monotonic() - started < TIMEOUT + SLACK
        assert isinstance(caught.value, UNAVAILABLE)
    await asyncio.to_thread(server.start)
    assert await resp.command("PING") == b"PONG"  # connects again by itself


async def test_redis_frozen_then_resumed(server: Server, resp: Resp) -> None:
    assert await resp.command("PING") == b"PONG"
    server.freeze()
    try:
        for _ in range(3):  # the open connection, then new ones the kernel accepts for Redis
            started = time.monotonic()
            results = await asyncio.gather(*(resp.command("ECHO", "x") for _ in range(10)), return_exceptions=True)
            assert time.monotonic() - started < TIMEOUT + SLACK
            assert all(isinstance(r, TimeoutError | ConnectionError) for r in results), results
            assert all(isinstance(r, UNAVAILABLE) for r in results)
    finally:
        server.thaw()
    assert await resp.command("ECHO", "back") == b"back"


async def test_url_with_user_password_and_database(server: Server, other: Redis) -> None:
    await other.acl_setuser("resp-user", enabled=True, passwords=["+s3cr3t"], keys=["*"], commands=["+@all"])
    try:
        client = Resp.from_url(f"redis://resp-user:s3cr3t@127.0.0.1:{server.port}/3", timeout=TIMEOUT)
        try:
            assert await client.command("SET", "resp:db", "three") == b"OK"
            assert await client.command("ACL", "WHOAMI") == b"resp-user"
        finally:
            await client.aclose()
        db3 = Redis.from_url(f"redis://127.0.0.1:{server.port}/3")
        try:
            assert await db3.get("resp:db") == b"three"
        finally:
            await db3.aclose()
        wrong = Resp.from_url(f"redis://resp-user:nope@127.0.0.1:{server.port}/0", timeout=TIMEOUT)
        try:
            with pytest.raises(ConnectionError, match="AUTH"):
                await wrong.command("PING")
        finally:
            await wrong.aclose()
    finally:
        await other.acl_deluser("resp-user")
    with pytest.raises(ValueError):
        Resp.from_url("rediss://127.0.0.1:6379/0")


def test_a_client_outlives_its_event_loop(server: Server) -> None:
    client = Resp.from_url(server.url, timeout=TIMEOUT)
    assert asyncio.run(client.command("ECHO", "first loop")) == b"first loop"
    assert asyncio.run(client.command("ECHO", "second loop")) == b"second loop"
    asyncio.run(client.aclose())


async def test_closed_client_fails_waiting_calls_and_can_be_used_again(resp: Resp) -> None:
    waiting = asyncio.create_task(resp.command("BLPOP", "resp:never", 0))
    await asyncio.sleep(0.05)
    await resp.aclose()
    with pytest.raises(ConnectionError):
        await waiting
    assert await resp.command("PING") == b"PONG"
