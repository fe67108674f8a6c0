"""Micro-benchmark of Redis clients for the gateway's hot path: N concurrent coroutines each
doing EVALSHA of a trivial script and of the real `limit` script, through redis-py's asyncio
client (as the gateway configured it, and variants), our pipelining client (gateway/platform/redis/resp.py:
one or more connections, each command written at once or writes coalesced per turn of the loop)
and, when installed, coredis and valkey-glide.

    .venv/bin/python -m bench.redis_client [--calls N] [--concurrency 1,32] [--repeats 3] [--json FILE]

The optional clients are not dependencies; to include them without touching .venv:
    .venv/bin/python -m pip install --target /tmp/rc-alt coredis valkey-glide
    PYTHONPATH=/tmp/rc-alt .venv/bin/python -m bench.redis_client

Pinning: this process (the clients, on uvloop as the gateway runs) on core 0, a private
redis-server (AOF appendfsync everysec) on core 1. For each client, script and concurrency:
wall µs per call (elapsed / calls: at concurrency 1 the round-trip latency, above it the
inverse of throughput), client CPU µs per call (process time / calls: what a gateway worker
pays) and calls/s per core (1e6 / CPU µs). Each cell is the median of the repeats, which run
interleaved so a noisy neighbour hits every client alike. Bounded by --calls per cell.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop
from redis.asyncio import Redis

from gateway.platform.config import Settings
from gateway.platform.redis.resp import Resp
from gateway.platform.redis.scripts import source
from gateway.platform.services import Services
from gateway.registry import convenios, participants
from gateway.registry.schemas import ConvenioCreate, ParticipantCreate
from ledger.ops import embedded

TRIVIAL = "return ARGV[1]"
Call = Callable[[], Awaitable[Any]]


class Target:
    """One script to call: its text, SHA, keys and arguments."""

    def __init__(self, name: str, text: str, keys: list[str], args: list[Any]) -> None:
        self.name, self.text, self.keys, self.args = name, text, keys, args
        self.sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


# -- the clients: each a factory giving (call maker, closer) --------------------------------------
Client = Callable[[str, Target], Awaitable[tuple[Call, Callable[[], Awaitable[None]]]]]


def _redis_py(**options: Any) -> Client:
    async def make(url: str, t: Target) -> tuple[Call, Callable[[], Awaitable[None]]]:
        r = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, **options)
        script = r.register_script(t.text)
        return (lambda: script(keys=t.keys, args=t.args)), r.aclose

    return make


def _redis_py_evalsha(**options: Any) -> Client:
    async def make(url: str, t: Target) -> tuple[Call, Callable[[], Awaitable[None]]]:
        r = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, **options)
        await r.script_load(t.text)
        n = len(t.keys)
        return (lambda: r.evalsha(t.sha, n, *t.keys, *t.args)), r.aclose

    return make


def _resp(connections: int, coalesce: bool = False) -> Client:
    async def make(url: str, t: Target) -> tuple[Call, Callable[[], Awaitable[None]]]:
        clients = [Resp.from_url(url, timeout=2, coalesce=coalesce) for _ in range(connections)]
        if connections == 1:
            c = clients[0]
            return (lambda: c.evalsha(t.sha, t.text, t.keys, t.args)), c.aclose
        turn = iter(range(1 << 62))

        def call() -> Awaitable[Any]:
            return clients[next(turn) % connections].evalsha(t.sha, t.text, t.keys, t.args)

        async def close() -> None:
            for c in clients:
                await c.aclose()

        return call, close

    return make


def _coredis() -> Client | None:
    try:
        import coredis
    except ImportError:
        return None

    async def make(url: str, t: Target) -> tuple[Call, Callable[[], Awaitable[None]]]:
        client = coredis.Redis.from_url(url, stream_timeout=2, connect_timeout=2)
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(client)
        await client.script_load(t.text)
        return (lambda: client.evalsha(t.sha, keys=t.keys, args=t.args)), stack.aclose

    return make


def _glide() -> Client | None:
    try:
        from glide import GlideClient, GlideClientConfiguration, NodeAddress
    except ImportError:
        return None

    async def make(url: str, t: Target) -> tuple[Call, Callable[[], Awaitable[None]]]:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        client = await GlideClient.create(
            GlideClientConfiguration([NodeAddress("127.0.0.1", port)], request_timeout=2000)
        )
        await client.custom_command(["SCRIPT", "LOAD", t.text])
        command = ["EVALSHA", t.sha, str(len(t.keys)), *t.keys, *(str(a) for a in t.args)]
        return (lambda: client.custom_command(command)), client.close

    return make


def clients() -> dict[str, Client]:
    found: dict[str, Client | None] = {
        # exactly as gateway/platform/services.py Services.open had it, through redis-py's Script object
        "redis-py pool (gateway)": _redis_py(health_check_interval=30, max_connections=512),
        "redis-py pool, evalsha": _redis_py_evalsha(health_check_interval=30, max_connections=512),
        "redis-py single connection": _redis_py_evalsha(single_connection_client=True),
        "resp.py 1 connection": _resp(1),
        "resp.py 1 connection, writes coalesced": _resp(1, coalesce=True),
        "resp.py 2 connections": _resp(2),
        "resp.py 4 connections": _resp(4),
        "coredis": _coredis(),
        "valkey-glide": _glide(),
    }
    return {name: make for name, make in found.items() if make is not None}


# -- measuring ------------------------------------------------------------------------------------------
async def measure(call: Call, calls: int, concurrency: int) -> tuple[float, float]:
    """(wall µs per call, CPU µs per call) for `calls` calls spread over `concurrency` coroutines."""
    per = calls // concurrency

    async def worker() -> None:
        for _ in range(per):
            await call()

    await asyncio.gather(*(worker() for _ in range(concurrency)))  # warm: connections open
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    done = per * concurrency
    return (time.perf_counter() - wall) / done * 1e6, (time.process_time() - cpu) / done * 1e6


async def one(make: Client, url: str, t: Target, calls: int, concurrency: int) -> tuple[float, float]:
    call, close = await make(url, t)
    try:
        check = await call()
        if check in (None, b"", ""):
            raise RuntimeError(f"{t.name}: empty answer {check!r}")
        return await measure(call, calls, concurrency)
    finally:
        await close()


async def targets(url: str) -> list[Target]:
    """The trivial script, and `limit` on a participant registered the gateway's way."""
    settings = Settings(redis_url=url, pepper=b"bench-pepper", key_prefix="rcbench", shards=16)
    svc = await Services.open(settings)
    try:
        await svc.start()
        await convenios.save_convenio(svc, "BENCH", ConvenioCreate(code="BENCH", name="BENCH", total_limit=10**9))
        await participants.save_participant(
            svc, "BENCH", "P0001", ParticipantCreate(code="P0001", name="x", limit=10**6)
        )
        k = svc.keys
        limit = Target("limit", source("limit"), [k.convenio("BENCH"), k.participant("BENCH", "P0001")], [])
    finally:
        await svc.close()
    return [Target("trivial", TRIVIAL, ["{s0}:rcbench:k"], ["hello"]), limit]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=10_000, help="calls per measurement")
    ap.add_argument("--concurrency", default="1,32", help="comma-separated coroutine counts")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="", help="run only clients whose name contains this")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    os.sched_setaffinity(0, {0})
    root = Path(tempfile.mkdtemp(prefix="convenio-rcbench-", dir="/tmp"))
    redis = embedded.EmbeddedRedis(root / "redis", appendfsync="everysec").start()
    assert redis.proc is not None
    os.sched_setaffinity(redis.proc.pid, {1})
    found = {n: m for n, m in clients().items() if args.only in n}
    samples: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            ts = runner.run(targets(redis.url))
            for _ in range(args.repeats):
                for t in ts:
                    for c in levels:
                        for name, make in found.items():
                            got = runner.run(one(make, redis.url, t, args.calls, c))
                            samples.setdefault((name, t.name, c), []).append(got)
    finally:
        redis.stop()
        shutil.rmtree(root, ignore_errors=True)

    rows = []
    for (name, script, c), got in samples.items():
        wall = statistics.median(w for w, _ in got)
        cpu = statistics.median(p for _, p in got)
        rows.append(
            {
                "client": name,
                "script": script,
                "concurrency": c,
                "wall_us_per_call": round(wall, 1),
                "cpu_us_per_call": round(cpu, 1),
                "calls_per_s": round(1e6 / wall),
                "calls_per_s_per_core": round(1e6 / cpu),
            }
        )
    rows.sort(key=lambda r: (r["script"], r["concurrency"], r["cpu_us_per_call"]))
    print("| script | N | client | wall µs/call | calls/s | client CPU µs/call | calls/s per core |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['script']} | {r['concurrency']} | {r['client']} | {r['wall_us_per_call']} | {r['calls_per_s']} "
            f"| {r['cpu_us_per_call']} | {r['calls_per_s_per_core']} |"
        )
    if args.json:
        info = {"pinning": "clients on core 0, redis-server on core 1", "redis": _redis_version(), **vars(args)}
        info["json"] = str(args.json)
        args.json.write_text(json.dumps({"settings": info, "rows": rows}, indent=2) + "\n")


def _redis_version() -> str:
    return subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
