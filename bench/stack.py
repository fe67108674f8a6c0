"""The stack a benchmark runs against, on loopback, pinned: the server under test (a gateway or
echo worker) alone on core 0; Redis, the load generator and the preparation (this process) on
core 1. Postgres, when a phase needs it, is not pinned (the ERP baseline gets every core)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from gateway.platform.config import Settings
from gateway.platform.redis.keys import Keys
from gateway.platform.services import Services
from ledger.ops import embedded

SERVER_CORES = "0"
ALL_CORES = f"0-{(os.cpu_count() or 1) - 1}"
CLIENT_CORES = {1}
PEPPER = "bench-pepper"
PREFIX = "bench"
PINNING = (
    "server under test (one gateway or echo worker: uvicorn, uvloop, httptools) alone on core 0; "
    "Redis, the load generator and the preparation on core 1; Postgres (ERP baseline) on all cores"
)


def pin_here() -> None:
    os.sched_setaffinity(0, CLIENT_CORES)


def unpin_here() -> None:
    """Every core for this process and what it starts next (Postgres, for the ERP baseline)."""
    os.sched_setaffinity(0, range(os.cpu_count() or 1))


def pin(pid: int, cores: str) -> None:
    subprocess.run(["taskset", "-a", "-p", "-c", cores, str(pid)], check=True, stdout=subprocess.DEVNULL)


@dataclass
class BenchStack:
    root: Path
    appendfsync: str = "always"
    hold_ttl_s: int = 10
    #: the HTTP server of the gateway and the echo alike: "uvicorn" (what `convenio serve` runs)
    #: or "granian" (its Rust HTTP server, on the same ASGI app; measured, not adopted)
    server: str = "uvicorn"
    redis: embedded.EmbeddedRedis = field(init=False)
    servers: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.redis = embedded.EmbeddedRedis(self.root / "redis", appendfsync=self.appendfsync)

    def start(self) -> BenchStack:
        embedded.ensure_installed()
        self.redis.start()
        assert self.redis.proc is not None
        pin(self.redis.proc.pid, ",".join(map(str, sorted(CLIENT_CORES))))
        return self

    def stop(self) -> None:
        for proc in self.servers:
            stop(proc)
        self.redis.stop()

    @property
    def settings(self) -> Settings:
        return Settings(
            redis_url=self.redis.url,
            pepper=PEPPER.encode(),
            key_prefix=PREFIX,
            hold_ttl_s=self.hold_ttl_s,
            password_threads=2,
        )

    def settle(self, most_s: float = 120.0, every_hold: bool = False) -> float:
        """Wait until Redis is doing nothing in the background for the phase about to start, and
        say how long that took: no rewrite of its AOF (or snapshot) running, a forked child that
        takes a whole core, nor one due soon (an AOF grown by half since its last rewrite is
        rewritten first); and no empenho of an earlier phase left overdue, which the running
        gateway's sweeper would be expiring (tens of thousands after the holds phases: the
        event loop busy with them, and Redis too) while the phase measures something else;
        `every_hold`: no empenho left pending at all (they expire within the bench's hold TTL)."""
        client = redis.Redis.from_url(self.redis.url)
        keys = Keys(PREFIX, self.settings.shards)
        started = time.monotonic()
        try:
            info = client.info("persistence")
            grown = int(info.get("aof_current_size", 0)) - int(info.get("aof_base_size", 0))
            if info.get("aof_enabled") and grown > max(16 << 20, int(info.get("aof_base_size", 0)) // 2):
                # past twice its last rewritten size Redis rewrites the AOF by itself, forking a
                # child for a core, in the middle of whatever phase runs then: rewrite it now
                with contextlib.suppress(redis.ResponseError):  # one already under way
                    client.bgrewriteaof()
                time.sleep(0.1)
            while time.monotonic() - started < most_s:
                info = client.info("persistence")
                rewriting = info.get("aof_rewrite_in_progress") or info.get("rdb_bgsave_in_progress")
                now_ms = "+inf" if every_hold else int(time.time() * 1000)
                overdue = sum(client.zcount(keys.pending(s), "-inf", now_ms) for s in range(keys.shards))
                if not rewriting and not overdue:
                    break
                time.sleep(0.1)
        finally:
            client.close()
        return time.monotonic() - started

    def background_saves(self) -> int:
        """How many AOF rewrites and snapshots Redis has made so far (a phase that saw one says so)."""
        client = redis.Redis.from_url(self.redis.url)
        try:
            info = client.info("persistence")
            return int(info.get("aof_rewrites", 0)) + int(info.get("rdb_saves", 0))
        finally:
            client.close()

    async def gateway(self) -> Services:
        svc = await Services.open(self.settings)
        await svc.start()
        return svc

    def env(self, **extra: str) -> dict[str, str]:
        return gateway_env(self.redis.url, CONVENIO_HOLD_TTL=str(self.hold_ttl_s), **extra)

    def serve_gateway(
        self, cores: str | None = SERVER_CORES, threads: int = 1, workers: int = 1
    ) -> tuple[subprocess.Popen, int]:
        port = embedded.free_port()
        cmd = [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port), "--log-level", "warning"]
        cmd += ["--workers", str(workers)]
        if self.server == "granian":
            cmd = granian_command("gateway.app:create_app", port)
        env = self.env(CONVENIO_PASSWORD_THREADS=str(threads))
        return self._serve(cmd, env, port, cores), port

    def serve_echo(self) -> tuple[subprocess.Popen, int]:
        port = embedded.free_port()
        cmd = granian_command("bench.echo_app:create_app", port) if self.server == "granian" else echo_command(port)
        return self._serve(cmd, self.env(), port, SERVER_CORES), port

    def _serve(self, cmd: list[str], env: dict[str, str], port: int, cores: str | None) -> subprocess.Popen:
        # this process is pinned to the client's core, and a child inherits that: say "all" explicitly
        prefix = ["taskset", "-c", cores or ALL_CORES]
        log = (self.root / f"server-{port}.log").open("ab")
        proc = subprocess.Popen([*prefix, *cmd], env=env, stdout=log, stderr=log)
        self.servers.append(proc)
        return wait_healthy(proc, port, f"{cmd} did not start; see {log.name}")


def gateway_env(redis_url: str, **extra: str) -> dict[str, str]:
    """The environment a bench's gateway (or writer, or CLI) runs with, on `redis_url`."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "DATABASE_URL": "postgresql://bench@127.0.0.1:1/none",  # the hot path never reads the ledger
        "CONVENIO_PEPPER": PEPPER,
        "CONVENIO_KEY_PREFIX": PREFIX,
        **extra,
    }


def wait_healthy(proc: subprocess.Popen, port: int, failure: str, seconds: float = 30) -> subprocess.Popen:
    """The server once its /healthz answers; killed, and `failure` raised, if it never does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except httpx.TransportError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(failure)


def echo_command(port: int) -> list[str]:
    """Baseline (i): the bare Starlette echo, served exactly as `convenio serve` serves the gateway."""
    return [sys.executable, "-m", "uvicorn", "bench.echo_app:create_app", "--factory", "--port", str(port)] + [
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--no-proxy-headers",
        "--log-level",
        "warning",
    ]


def granian_command(factory: str, port: int) -> list[str]:
    """The same ASGI app served by granian instead of uvicorn: one worker, one runtime thread,
    uvloop, no access log (as uvicorn is run)."""
    return [str(Path(sys.executable).with_name("granian")), "--interface", "asgi", "--factory", factory] + [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--runtime-threads",
        "1",
        "--loop",
        "uvloop",
        "--no-ws",
        "--log-level",
        "warning",
    ]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
