"""A small HTTP/1.1 load generator on raw asyncio streams (keep-alive), cheap enough that one
core can drive one gateway worker.

Two ways to load:
- closed loop (`run`, `closed`): C connections, each sends its next unit of work as soon as
  the last one is answered: finds the maximum rate.
- open loop (`open_loop`): units start on a fixed schedule whatever the answers do, on as many
  connections as it takes; a unit's latency counts from when it was due, not from when a
  connection was free, so a server that falls behind is not flattered (coordinated omission).

A unit of work is `work(conn, i)`: one request, or a few in a row (hold then commit).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Result:
    requests: int  # units of work answered
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]
    late: int = 0  # open loop: units that started more than 1 ms after they were due
    target_rate: float | None = None
    requests_per_unit: int = 1

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(len(data) * p))] if data else float("nan")

    def summary(self) -> dict:
        out = {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "p50_ms": round(self.pct(0.50), 3),
            "p99_ms": round(self.pct(0.99), 3),
            "p999_ms": round(self.pct(0.999), 3),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }
        if self.requests_per_unit != 1:
            out["http_requests_per_s"] = round(self.rate * self.requests_per_unit, 1)
        if self.target_rate is not None:
            out["target_rate"] = round(self.target_rate, 1)
            out["started_late"] = self.late
        return out


class Conn:
    """One keep-alive connection; `call` sends a request and returns (status, body)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Conn:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def call(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


Work = Callable[[Conn, int], Awaitable[int]]


def max_loads(concurrency: int) -> tuple[int, ...]:
    """The connections a max rate is measured with, the best of them kept (ours and the ERP's
    gateway alike): the given ones and four times as many. Where each decision waits for Redis's
    fsync (appendfsync always), 32 connections leave both cores part idle, every request in
    flight waiting on the same fsync; the echo is already at its best with them."""
    return (concurrency, concurrency * 4)


def single(make: Callable[[int], bytes]) -> Work:
    """A unit of one request, `make(i)`; its status is the unit's."""

    async def work(conn: Conn, i: int) -> int:
        status, _ = await conn.call(make(i))
        return status

    return work


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def add(self, started: float, status: int) -> None:
        self.latencies.append((time.perf_counter() - started) * 1000)
        self.statuses[status] = self.statuses.get(status, 0) + 1


async def closed(
    host: str, port: int, work: Work, total: int, concurrency: int, deadline_s: float = 120.0, per_unit: int = 1
) -> Result:
    """`total` units over `concurrency` connections, or as many as fit in `deadline_s`."""
    counter = iter(range(total))
    tally = _Tally()
    stop_at = time.perf_counter() + deadline_s

    async def worker() -> None:
        conn = await Conn.open(host, port)
        try:
            for i in counter:
                if time.perf_counter() > stop_at:
                    return
                started = time.perf_counter()
                tally.add(started, await work(conn, i))
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return Result(len(tally.latencies), seconds, tally.latencies, tally.statuses, requests_per_unit=per_unit)


async def run(host: str, port: int, make: Callable[[int], bytes], total: int, concurrency: int) -> Result:
    """Closed loop of single requests (the original interface, used by bench.core)."""
    return await closed(host, port, single(make), total, concurrency)


async def open_loop(
    host: str,
    port: int,
    work: Work,
    rate: float,
    seconds: float,
    first: int = 0,
    connections: int = 64,
    per_unit: int = 1,
) -> Result:
    """Units first, first+1, ... due every 1/rate s for `seconds`, sent by `connections` workers
    that each take the next due unit when free; waits for the last answer at most `seconds`
    more. Latency runs from each unit's due time, so a unit that waited for a free connection
    counts its wait (`started_late` says how many did)."""
    total = max(1, int(rate * seconds))
    schedule = iter(range(total))
    tally = _Tally()
    late = 0
    start = time.perf_counter()
    give_up = start + 2 * seconds + 5

    async def worker() -> None:
        nonlocal late
        conn = await Conn.open(host, port)
        try:
            for n in schedule:
                due = start + n / rate
                delay = due - time.perf_counter()
                if delay > 0.001:  # a timer per unit costs more than a unit sent up to 1 ms early
                    await asyncio.sleep(delay)
                elif delay < -0.001:
                    late += 1
                if time.perf_counter() > give_up:
                    return
                try:
                    status = await work(conn, first + n)
                except (OSError, asyncio.IncompleteReadError):
                    tally.add(due, 599)
                    conn.close()
                    conn = await Conn.open(host, port)
                    continue
                tally.add(due, status)
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return Result(
        len(tally.latencies),
        time.perf_counter() - start,
        tally.latencies,
        tally.statuses,
        late=late,
        target_rate=rate,
        requests_per_unit=per_unit,
    )


def request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: bench", f"Content-Length: {len(body)}"]
    if body:
        lines.append("Content-Type: application/json")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
