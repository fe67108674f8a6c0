"""A small asyncio Redis client for the hot path: one connection, every command written at once
and the replies matched to their callers first-in first-out, so concurrent requests pipeline
on their own. hiredis parses the replies. Everything off the hot path keeps using redis-py.

Why not redis-py's asyncio client here: it checks a connection out of a pool, runs each command
under a retry wrapper and waits for that one reply before the connection goes back. Measured
with `python -m bench.redis_client` (32 coroutines calling the `limit` script), redis-py as the
gateway had it took about 90 µs of client CPU per call, this client about 13 µs.

Failures are redis-py's exceptions, so code that already catches those (the HTTP edge's
`UNAVAILABLE`, the writer, the sweeper) needs no change:
- no connection, or it broke: `redis.exceptions.ConnectionError`; every command waiting on
  that connection fails at once, and the next call connects again;
- no answer within `timeout` seconds of the call (connecting included):
  `redis.exceptions.TimeoutError`; the connection is dropped, since every reply queued behind
  the missing one would be just as late;
- an error reply: `ResponseError` or its subclass for the code (`NoScriptError`,
  `BusyLoadingError` while Redis loads its data, ...), as redis-py would raise it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import (
    BusyLoadingError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

#: the first word of an error reply → the exception redis-py raises for it
_ERRORS: dict[str, type[ResponseError]] = {
    "NOSCRIPT": NoScriptError,
    "LOADING": BusyLoadingError,  # type: ignore[dict-item] - redis-py makes it a ConnectionError
    "READONLY": ReadOnlyError,
    "OOM": OutOfMemoryError,
    "NOPERM": NoPermissionError,
}


def _reply_error(message: str) -> Exception:
    code = message.split(" ", 1)[0]
    return _ERRORS.get(code, ResponseError)(message)


def mark_and_wait(mark: str, replicas: int, timeout_ms: int) -> tuple[tuple[Any, ...], ...]:
    """A write of our own, then `WAIT`: `WAIT` counts the replicas that have this connection's
    last write, and with it everything the server wrote before (whoever wrote it)."""
    return ("SET", mark, "1", "PX", 60_000), ("WAIT", replicas, timeout_ms)


class _Connection(asyncio.Protocol):
    """One socket to Redis and the callers waiting on it, oldest first."""

    def __init__(self, loop: asyncio.AbstractEventLoop, address: str, coalesce: bool) -> None:
        self.loop = loop
        self.address = address
        self.coalesce = coalesce
        self.transport: asyncio.Transport | None = None
        self.closed = False
        #: (future, deadline) per command written and not yet answered, in the order written
        self.waiting: deque[tuple[asyncio.Future, float]] = deque()
        self._reader = hiredis.Reader(replyError=_reply_error)
        self._watchdog: asyncio.TimerHandle | None = None
        self._unsent: list[bytes] = []

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        waiting = self.waiting
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                self.fail(RedisConnectionError(f"Redis at {self.address} sent a malformed reply: {exc}"))
                return
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream can no longer be trusted
                self.fail(RedisConnectionError(f"Redis at {self.address} sent an unexpected reply"))
                return
            future = waiting.popleft()[0]
            if not future.done():  # a caller that gave up (cancelled) still had its reply read
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"Connection to Redis at {self.address} lost" + (f": {exc}" if exc else "")))

    # -- used by the client ---------------------------------------------------------------------
    def send(self, command: bytes, deadline: float) -> asyncio.Future:
        future = self.loop.create_future()
        self.waiting.append((future, deadline))
        if not self.coalesce:
            self.transport.write(command)  # type: ignore[union-attr]
        else:
            if not self._unsent:
                self.loop.call_soon(self._flush)
            self._unsent.append(command)
        if self._watchdog is None:
            self._watchdog = self.loop.call_at(deadline, self._check)
        return future

    def _flush(self) -> None:
        unsent, self._unsent = self._unsent, []
        if not self.closed:
            self.transport.write(unsent[0] if len(unsent) == 1 else b"".join(unsent))  # type: ignore[union-attr]

    def _check(self) -> None:
        # One timer per connection, set for the oldest command's deadline: commands are
        # answered in order, so nothing behind it can be late before it is.
        self._watchdog = None
        if not self.waiting:
            return
        deadline = self.waiting[0][1]
        if deadline <= self.loop.time() + 0.001:  # timers may fire a little early
            self.fail(RedisTimeoutError(f"Redis at {self.address} did not answer in time"))
        else:
            self._watchdog = self.loop.call_at(deadline, self._check)

    def fail(self, exc: Exception) -> None:
        """Close the connection and fail every command still waiting on it."""
        self.closed = True
        self._unsent = []
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        # A connection left behind by an event loop that has been closed (tests run one loop
        # each) can no longer be told anything: it is simply dropped.
        with contextlib.suppress(RuntimeError):
            if self.transport is not None:
                self.transport.abort()
        waiting, self.waiting = self.waiting, deque()
        for future, _ in waiting:
            if not future.done():
                with contextlib.suppress(RuntimeError):
                    future.set_exception(exc)


class Resp:
    """Commands to one Redis over one lazily (re)connected connection.

    `timeout` bounds every call, from the moment it is made to its reply, connecting included.

    `coalesce=True` holds the commands made in one turn of the event loop and writes them
    together at its end: one system call instead of one each. It takes less client CPU in the
    micro-benchmark, but the gateway served fewer holds per second with it (the commands leave
    only after the rest of the turn's work), so each command is written as it is made.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 2.0,
        coalesce: bool = False,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.timeout = timeout
        self.coalesce = coalesce
        self.address = f"{host}:{port}"
        self._conn: _Connection | None = None
        self._connecting: asyncio.Task | None = None

    @classmethod
    def from_url(cls, url: str, timeout: float = 2.0, coalesce: bool = False) -> Resp:
        """`redis://[[user]:password@]host[:port][/db]`, as redis-py reads it."""
        u = urlsplit(url)
        if u.scheme != "redis":
            raise ValueError(f"only redis:// URLs are supported here, not {u.scheme}://")
        path = u.path.strip("/")
        return cls(
            host=u.hostname or "127.0.0.1",
            port=u.port or 6379,
            db=int(path) if path else 0,
            username=unquote(u.username) if u.username else None,
            password=unquote(u.password) if u.password else None,
            timeout=timeout,
            coalesce=coalesce,
        )

    async def command(self, *args: str | bytes | int | float) -> Any:
        """Send one command and return its reply (bytes, int, list, None ...)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        conn = self._conn
        if conn is None or conn.closed or conn.loop is not loop:
            conn = await self._connection(loop, deadline)
        reply = await conn.send(hiredis.pack_command(args), deadline)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def evalsha(self, sha: str, script: str, keys: list[str], args: list[Any], resend: bool = True) -> Any:
        """EVALSHA; when Redis no longer knows the script (restarted, flushed), load it and retry
        once. (`resend` is for the cluster client: one server's calls are never sent twice.)"""
        try:
            return await self.command("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.command("SCRIPT", "LOAD", script)
            return await self.command("EVALSHA", sha, len(keys), *keys, *args)

    async def send_all(self, commands: tuple[tuple[Any, ...], ...], extra_s: float = 0.0) -> list[Any]:
        """Send commands back to back on the one connection (nothing of another caller's between
        them: `ASKING` before the command it is for, `WAIT` right after a script) and return
        their replies, an error reply as its exception object rather than raised. `extra_s`
        lengthens the deadline, for a command that blocks on purpose (`WAIT`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout + extra_s
        conn = self._conn
        if conn is None or conn.closed or conn.loop is not loop:
            conn = await self._connection(loop, deadline)
        futures = [conn.send(hiredis.pack_command(c), deadline) for c in commands]
        if len(futures) == 1:
            return [await futures[0]]
        replies = []
        for future in futures:
            try:
                replies.append(await future)
            except BaseException:
                for rest in futures:  # the connection failed them all: retrieved, so not logged
                    if rest.done() and not rest.cancelled():
                        rest.exception()
                raise
        return replies

    async def evalsha_acked(
        self,
        sha: str,
        script: str,
        keys: list[str],
        args: list[Any],
        replicas: int,
        timeout_ms: int,
        resend: bool = True,
    ) -> tuple[Any, int]:
        """EVALSHA and then `WAIT replicas timeout_ms` on the same connection: the script's reply
        and how many replicas confirmed having its writes (and every write before it)."""
        call = ("EVALSHA", sha, len(keys), *keys, *args)
        reply, acked = await self.send_all((call, ("WAIT", replicas, timeout_ms)), extra_s=timeout_ms / 1000)
        if isinstance(reply, NoScriptError):
            await self.command("SCRIPT", "LOAD", script)
            reply, acked = await self.send_all((call, ("WAIT", replicas, timeout_ms)), extra_s=timeout_ms / 1000)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(acked, Exception):
            raise acked
        return reply, acked

    async def replicated(self, mark: str, replicas: int, timeout_ms: int) -> int:
        """How many replicas (waiting up to `timeout_ms` for `replicas`) have every write this
        server made so far: a write of our own (`mark`, short-lived) and `WAIT` after it."""
        _, acked = await self.send_all(mark_and_wait(mark, replicas, timeout_ms), extra_s=timeout_ms / 1000)
        if isinstance(acked, Exception):
            raise acked
        return acked

    async def aclose(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        if self._conn is not None:
            self._conn.fail(RedisConnectionError("Client closed"))
            self._conn = None

    # -- connecting ---------------------------------------------------------------------------------
    async def _connection(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        # Callers arriving while a connection is being made wait for that one, each within
        # its own deadline; a caller giving up does not cancel it for the others.
        if self._conn is not None and self._conn.loop is not loop:  # a new event loop (tests)
            self._conn.fail(RedisConnectionError("Event loop changed"))
            self._conn = None
        if self._connecting is None or self._connecting.get_loop() is not loop:
            self._connecting = loop.create_task(self._open(loop))
            self._connecting.add_done_callback(self._opened)
        task = self._connecting
        done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - loop.time()))
        if not done:
            raise RedisTimeoutError(f"Timed out connecting to Redis at {self.address}")
        if task.cancelled():  # the client was closed meanwhile
            raise RedisConnectionError("Client closed")
        return task.result()

    def _opened(self, task: asyncio.Task) -> None:
        if self._connecting is task:
            self._connecting = None
        if not task.cancelled() and task.exception() is None:
            self._conn = task.result()

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        deadline = loop.time() + self.timeout
        try:
            async with asyncio.timeout(self.timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop, self.address, self.coalesce), self.host, self.port
                )
        except TimeoutError:  # the built-in one, from asyncio.timeout
            raise RedisTimeoutError(f"Timed out connecting to Redis at {self.address}") from None
        except OSError as exc:
            raise RedisConnectionError(f"Error connecting to Redis at {self.address}: {exc}") from None
        try:
            hello: list[tuple[Any, ...]] = []
            if self.password is not None:
                hello.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
            if self.db:
                hello.append(("SELECT", self.db))
            for command in hello:
                reply = await conn.send(hiredis.pack_command(command), deadline)
                if isinstance(reply, Exception):
                    raise RedisConnectionError(f"Redis at {self.address} refused {command[0]}: {reply}")
        except BaseException as exc:
            aborted = RedisConnectionError(f"Connecting to Redis at {self.address} aborted")
            conn.fail(exc if isinstance(exc, RedisConnectionError | RedisTimeoutError) else aborted)
            raise
        return conn
