"""A small closed-loop HTTP/1.1 load generator on raw asyncio streams (keep-alive, one request
in flight per connection), cheap enough that one core can drive one gateway worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Result:
    requests: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def pct(self, p: float) -> float:
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(len(data) * p))] if data else float("nan")

    def summary(self) -> dict:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "p50_ms": round(self.pct(0.50), 3),
            "p99_ms": round(self.pct(0.99), 3),
            "p999_ms": round(self.pct(0.999), 3),
            "statuses": self.statuses,
        }


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def run(host: str, port: int, make: Callable[[int], bytes], total: int, concurrency: int) -> Result:
    """Send `total` requests (request i is `make(i)`) over `concurrency` connections."""
    counter = iter(range(total))
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in counter:
                started = time.perf_counter()
                writer.write(make(i))
                status = await _read_response(reader)
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(len(latencies), time.perf_counter() - started, latencies, statuses)


def request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: bench", f"Content-Length: {len(body)}"]
    if body:
        lines.append("Content-Type: application/json")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
