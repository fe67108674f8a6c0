"""The whole product as separate processes, the way it is deployed, with a nemesis's levers.

One private redis-server (AOF, appendfsync always) and one private, durable Postgres (fsync
on: a crash must not lose a committed batch), `convenio serve` with several uvicorn workers,
and one `convenio ledger` writer. Each can be killed with SIGKILL and started again on the
same port and data; Postgres is stopped in immediate mode (its crash: WAL recovery on start).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ledger.ops import embedded

CLI = [sys.executable, "-m", "ledger.cli"]


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        kids += [int(k) for k in task.read_text().split()]
    return kids


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class Stack:
    root: Path
    pepper: str
    workers: int = 2
    shards: int = 4
    hold_ttl_s: int = 6
    redis_timeout_ms: int = 500
    prefix: str = "bank"
    #: a Redis Cluster of 3 masters with a replica each (decisions wait for it) instead of one Redis
    cluster: bool = False
    port: int = field(default_factory=embedded.free_port)
    redis: embedded.EmbeddedRedis | embedded.EmbeddedRedisCluster = field(init=False)
    postgres: embedded.EmbeddedPostgres = field(init=False)
    gateway: subprocess.Popen | None = None
    writer: subprocess.Popen | None = None
    writer_starts: int = 0
    masters_killed: int = 0

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # as root, postgres runs as its own user and must reach it
        if self.cluster:
            self.redis = embedded.EmbeddedRedisCluster(self.root / "redis", masters=3, replicas=1)
        else:
            self.redis = embedded.EmbeddedRedis(self.root / "redis", appendfsync="always")
        self.postgres = embedded.EmbeddedPostgres(self.root / "postgres", durable=True)

    # -- the product's environment ---------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "REDIS_URL": self.redis.url,
            "DATABASE_URL": self.postgres.url,
            "CONVENIO_PEPPER": self.pepper,
            "CONVENIO_KEY_PREFIX": self.prefix,
            "CONVENIO_SHARDS": str(self.shards),
            "CONVENIO_HOLD_TTL": str(self.hold_ttl_s),
            "CONVENIO_REDIS_TIMEOUT_MS": str(self.redis_timeout_ms),
            "CONVENIO_PASSWORD_THREADS": "2",
            "CONVENIO_SWEEP_INTERVAL_MS": "500",
            "CONVENIO_REPLICA_ACKS": "1" if self.cluster else "0",
            "CONVENIO_REDIS_CLUSTER_NODES": self.redis.nodes
            if isinstance(self.redis, embedded.EmbeddedRedisCluster)
            else "",
        }

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def logs(self) -> dict[str, str]:
        """Every log the run produced, by file name: the gateway's, the writer's, the servers'."""
        paths = [self.root / "gateway.log", self.root / "writer.log"]
        paths += sorted(self.redis.data_dir.glob("**/redis.log")) + [self.postgres.data_dir / "postgres.log"]
        return {str(p.relative_to(self.root)): p.read_text(errors="replace") for p in paths if p.exists()}

    # -- start and stop ------------------------------------------------------------------------------
    def start(self) -> Stack:
        embedded.ensure_installed()
        self.redis.start()
        self.postgres.start()
        migrated = self.cli("migrate")
        assert migrated.returncode == 0, migrated.stderr
        self.start_gateway()
        self.start_writer()
        return self

    def start_gateway(self) -> None:
        log = (self.root / "gateway.log").open("ab")
        args = ["serve", "--port", str(self.port), "--workers", str(self.workers), "--log-level", "info"]
        self.gateway = subprocess.Popen([*CLI, *args], env=self.env, stdout=log, stderr=log)
        self.wait_ready()

    def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.gateway is not None and self.gateway.poll() is None, "the gateway exited"
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"the gateway was not ready within {seconds} s")

    def start_writer(self) -> None:
        self.writer_starts += 1
        log = (self.root / "writer.log").open("ab")
        consumer = f"bank-writer-{self.writer_starts}"
        self.writer = subprocess.Popen([*CLI, "ledger", "--consumer", consumer], env=self.env, stdout=log, stderr=log)

    def stop(self) -> None:
        for proc in (self.gateway, self.writer):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in (self.gateway, self.writer):
            if proc is not None:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.redis.stop()
        self.postgres.stop()

    # -- the nemesis's levers: each kills, waits, and brings the piece back ---------------------------
    def kill_redis(self, down_s: float) -> None:
        if isinstance(self.redis, embedded.EmbeddedRedisCluster):
            self.kill_master(down_s)
            return
        assert self.redis.proc is not None
        self.redis.proc.kill()
        self.redis.proc.wait()
        time.sleep(down_s)
        self.redis.start()  # same port, same appendonly files

    def kill_master(self, down_s: float) -> None:
        """SIGKILL one master (each in turn); its replica takes over; the dead node comes back
        after `down_s` and rejoins as the new master's replica."""
        cluster = self.redis
        assert isinstance(cluster, embedded.EmbeddedRedisCluster)
        masters = sorted(cluster.master_ports())
        victim = masters[self.masters_killed % len(masters)]
        self.masters_killed += 1
        cluster.kill(victim)
        cluster.wait_failover(victim)
        time.sleep(down_s)
        cluster.start_node(victim)
        cluster.wait_ready()

    def kill_writer(self, down_s: float) -> None:
        assert self.writer is not None
        self.writer.kill()
        self.writer.wait()
        time.sleep(down_s)
        self.start_writer()

    def gateway_workers(self) -> list[int]:
        assert self.gateway is not None
        return [pid for pid in _children(self.gateway.pid) if "spawn_main" in _cmdline(pid)]

    def kill_gateway_worker(self, victim: int) -> None:
        """SIGKILL one uvicorn worker; its supervisor starts a new one in its place."""
        before = set(self.gateway_workers())
        workers = sorted(before)
        pid = workers[victim % len(workers)]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = set(self.gateway_workers())
            if pid not in now and len(now) == len(before):
                return
            time.sleep(0.1)
        raise TimeoutError("uvicorn did not replace the killed worker within 60 s")

    def restart_postgres(self, down_s: float) -> None:
        """Immediate shutdown (no checkpoint: the next start replays the WAL), then start."""
        proc = self.postgres.proc
        assert proc is not None
        proc.send_signal(signal.SIGQUIT)
        proc.wait(timeout=30)
        time.sleep(down_s)
        self.postgres.start()
