"""(k) Redis Cluster: holds on 1 and on 3 masters, Redis CPU per decision, the ledger writers'
drain (one writer, then one per master), and a shard moved to another master while holds go on.

    .venv/bin/python -m bench.cluster [--seconds S] [--units N] [--smoke] [--out FILE]

Each size gets its own private cluster (appendfsync always, as in production) and one gateway
worker on it; nothing is pinned (the masters, the worker and the load share the machine's
cores). The sales go to CONVENIOS convênios, whose shards the cluster spreads over its masters.
The figures of interest are Redis's CPU per decision (what a master can carry) and how holds
and the writers' drain change from 1 to 3 masters on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import http_load, scenarios
from bench.http_load import Conn, Result, Work
from bench.redis_ceiling import cpu_seconds
from bench.stack import PEPPER, PREFIX, gateway_env, stop, wait_healthy
from gateway.auth import apikeys
from gateway.auth.permissions import Permission
from gateway.platform.config import Settings
from gateway.platform.redis.cluster import slot_of
from gateway.platform.services import Services
from gateway.platform.streams import ledger_lag
from ledger.ops import cluster as topology
from ledger.ops import embedded
from ledger.ops.verify import wait_for_ledger

CONVENIOS = 12
HOST = "127.0.0.1"


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Spread:
    """Holds over every convênio in turn, each with its own minted proof."""

    def __init__(self, pop: scenarios.Population, minted: list[tuple[str, str, str]]) -> None:
        self.pop = pop
        self._queue = collections.deque(minted)

    def supply(self, minted: list[tuple[str, str, str]]) -> None:
        self._queue.extend(minted)

    def hold(self) -> Work:
        async def work(conn: Conn, i: int) -> int:
            convenio, participant, proof = self._queue.popleft()
            raw = scenarios.hold_request(self.pop, convenio, participant, proof, f"k-{proof[:32]}")
            status, _ = await conn.call(raw)
            return status

        return work


class Cluster:
    """One size: its cluster, a gateway worker on it, the population."""

    def __init__(self, root: Path, masters: int, participants: int, rng: random.Random) -> None:
        self.root, self.masters, self.participants, self.rng = root, masters, participants, rng
        self.redis = embedded.EmbeddedRedisCluster(root / f"cluster-{masters}", masters=masters, appendfsync="always")
        self.gateway: subprocess.Popen | None = None
        self.port = 0
        self.codes = [f"K{c:02d}" for c in range(CONVENIOS)]
        self.people = [f"P{i:04d}" for i in range(participants)]

    @property
    def settings(self) -> Settings:
        return Settings(redis_url=self.redis.url, pepper=PEPPER.encode(), key_prefix=PREFIX, password_threads=2)

    def env(self, **extra: str) -> dict[str, str]:
        return gateway_env(self.redis.url, **extra)

    async def start(self) -> scenarios.Population:
        self.redis.start()
        svc = await self.open()
        try:
            for code in self.codes:
                await scenarios._convenio(svc, code, shared=False)
                await scenarios.add_participants(svc, code, self.people)
            token, _ = await apikeys.create(svc, frozenset(Permission), name="bench")
        finally:
            await svc.close()
        await asyncio.to_thread(self.serve)
        return scenarios.Population(token, "", [], [], [])

    def serve(self) -> None:
        self.port = embedded.free_port()
        cmd = [sys.executable, "-m", "ledger.cli", "serve", "--port", str(self.port), "--log-level", "warning"]
        log = (self.root / f"gateway-{self.masters}.log").open("ab")
        self.gateway = subprocess.Popen(cmd, env=self.env(), stdout=log, stderr=log)
        wait_healthy(self.gateway, self.port, f"the gateway on {self.masters} master(s) did not start")

    async def open(self) -> Services:
        svc = await Services.open(self.settings)
        await svc.start()
        return svc

    async def mint(self, svc: Services, n: int) -> list[tuple[str, str, str]]:
        out = []
        per = -(-n // CONVENIOS)
        for code in self.codes:
            out += [(code, p, proof) for p, proof in await scenarios.mint(svc, code, self.people, per, self.rng)]
        self.rng.shuffle(out)
        return out[:n]

    def master_pids(self) -> list[int]:
        return [self.redis.procs[p].pid for p in self.redis.master_ports()]

    def redis_cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.master_pids())

    def writer(self, env: dict[str, str], n: int) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "ledger.cli", "ledger", "--consumer", f"bench-writer-{n}"]
        log = (self.root / f"writer-{n}.log").open("ab")
        return subprocess.Popen(cmd, env=env, stdout=log, stderr=log)

    def stop(self) -> None:
        if self.gateway is not None:
            stop(self.gateway)
        self.redis.stop()


async def holds(c: Cluster, pop: scenarios.Population, args: argparse.Namespace) -> dict[str, Any]:
    """The maximum rate of holds, Redis's CPU per hold meanwhile, then latency at 50 %."""
    svc = await c.open()
    try:
        sales = Spread(pop, await c.mint(svc, args.units + args.units // 10))
        await http_load.closed(HOST, c.port, sales.hold(), args.units // 10, args.concurrency, 10)  # warm-up
        cpu = c.redis_cpu()
        peak = await http_load.closed(HOST, c.port, sales.hold(), args.units, args.concurrency, args.seconds * 4)
        used = c.redis_cpu() - cpu
        sales.supply(await c.mint(svc, int(peak.rate * 0.5 * args.seconds) + 10))
        half = await http_load.open_loop(HOST, c.port, sales.hold(), peak.rate * 0.5, args.seconds)
    finally:
        await svc.close()
    out = {
        "masters": c.masters,
        "max": peak.summary(),
        "at_50": half.summary(),
        "redis_cpu_us_per_hold": round(used / max(peak.requests, 1) * 1e6, 1),
        "redis_busy_at_max": round(used / peak.seconds, 2),
    }
    say(
        f"  {c.masters} master(s): holds max {peak.rate:>7.0f}/s p99 {peak.pct(0.99):6.2f} ms; "
        f"@50% p99 {half.pct(0.99):6.2f} ms; Redis CPU {out['redis_cpu_us_per_hold']} µs per hold  {peak.statuses}"
    )
    return out


async def reshard(c: Cluster, pop: scenarios.Population, rate: float, args: argparse.Namespace) -> dict[str, Any]:
    """Holds at `rate` (open loop) while the busiest shard moves to another master, live."""
    svc = await c.open()
    try:
        seconds = max(args.seconds * 2, 2.0)
        sales = Spread(pop, await c.mint(svc, int(rate * seconds * 1.5) + 50))
        retries = await asyncio.to_thread(_retries, c.port)
        seed = topology.node_of(c.redis.url)[0]
        everyone = await topology.masters(seed)
        slot = slot_of(svc.keys.tag(svc.keys.shard_of(c.codes[0])))
        source = next(m for m in everyone if m.serves(slot))
        target = next(m for m in everyone if m is not source)
        load = asyncio.create_task(http_load.open_loop(HOST, c.port, sales.hold(), rate, seconds))
        await asyncio.sleep(seconds / 4)
        started = time.perf_counter()
        moved = await topology.move_slot(slot, source, target, everyone, batch=20)
        took = time.perf_counter() - started
        r: Result = await load
        retried = await asyncio.to_thread(_retries, c.port) - retries
    finally:
        await svc.close()
    out = {
        "rate": round(rate, 1),
        "keys_moved": moved,
        "move_seconds": round(took, 3),
        "during": r.summary(),
        "errors": sum(v for k, v in r.statuses.items() if k >= 500),
        "gateway_calls_sent_again": retried,
    }
    say(
        f"  reshard: shard of {c.codes[0]} ({moved} keys) moved in {took:.2f} s during holds @{rate:.0f}/s: "
        f"p99 {r.pct(0.99):.2f} ms, p99.9 {r.pct(0.999):.2f} ms, {r.statuses}; the gateway sent {retried:.0f}"
        " calls again (MOVED/ASK/TRYAGAIN)"
    )
    return out


def _retries(port: int) -> float:
    """The gateway's convenio_redis_cluster_retries_total, from its /metrics."""
    import httpx

    for line in httpx.get(f"http://{HOST}:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith("convenio_redis_cluster_retries_total "):
            return float(line.split()[1])
    return 0.0


async def drain(
    c: Cluster, pop: scenarios.Population, writers: int, pg_url: str, args: argparse.Namespace, holds: int | None = None
) -> dict:
    """A backlog of `holds` holds' events over the shards, then `writers` ledger writers
    (processes) store it."""
    svc = await c.open()
    procs: list[subprocess.Popen] = []
    try:
        env = c.env(DATABASE_URL=pg_url)
        n = args.drain_holds if holds is None else holds
        if n:
            sales = Spread(pop, await c.mint(svc, n))
            await http_load.closed(HOST, c.port, sales.hold(), n, args.concurrency, args.seconds * 6)
        backlog = await ledger_lag(svc)
        started = time.perf_counter()
        procs += [await asyncio.to_thread(c.writer, env, w + 1) for w in range(writers)]
        left = await wait_for_ledger(svc, 600)
        took = time.perf_counter() - started
    finally:
        for p in procs:
            stop(p)
        await svc.close()
    out = {"writers": writers, "events": backlog, "seconds": round(took, 2), "events_per_s": round(backlog / took)}
    if left:
        out["left"] = left
    say(f"  {writers} writer(s): {backlog} events stored in {took:.2f} s: {out['events_per_s']}/s")
    return out


async def run_all(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    out: dict[str, Any] = {"convenios": CONVENIOS, "participants_each": args.participants}
    for masters in (1, 3):
        say(f"(k) Redis Cluster of {masters} master(s)")
        c = Cluster(root, masters, args.participants, rng)
        try:
            pop = await c.start()
            svc = await c.open()
            try:
                seed = topology.node_of(c.redis.url)[0]
                where = topology.placement(svc.keys, await topology.masters(seed))
                out.setdefault("shards_per_master", {})[str(masters)] = dict(collections.Counter(where.values()))
            finally:
                await svc.close()
            out[f"masters_{masters}"] = await holds(c, pop, args)
            if masters == 3:
                rate = out["masters_3"]["max"]["rate"] * 0.5
                out["reshard"] = await reshard(c, pop, rate, args)
                pg = embedded.EmbeddedPostgres(root / "postgres", durable=True).start()
                try:
                    migrate = [sys.executable, "-m", "ledger.cli", "migrate"]
                    env = c.env(DATABASE_URL=pg.url)
                    await asyncio.to_thread(subprocess.run, migrate, env=env, check=True, capture_output=True)
                    await drain(c, pop, 1, pg.url, args, holds=0)  # the registry's events, first
                    out["drain_1_writer"] = await drain(c, pop, 1, pg.url, args)
                    out["drain_3_writers"] = await drain(c, pop, 3, pg.url, args)
                finally:
                    pg.stop()
        finally:
            c.stop()
    one, three = out["masters_1"], out["masters_3"]
    out["ratios"] = {
        "cluster_holds_3_vs_1_masters": round(three["max"]["rate"] / one["max"]["rate"], 3),
        "cluster_redis_us_per_hold_3_vs_1": round(three["redis_cpu_us_per_hold"] / one["redis_cpu_us_per_hold"], 3),
        "drain_3_vs_1_writers": round(
            out["drain_3_writers"]["events_per_s"] / out["drain_1_writer"]["events_per_s"], 3
        ),
    }
    out["sizing"] = sizing(out)
    return out


def sizing(out: dict[str, Any]) -> dict[str, Any]:
    """What the figures say a chain needs: Redis CPU per decision bounds what a master carries
    (kept at half busy, for the peaks and a failover's doubled load), a gateway worker's
    measured maximum bounds what a worker carries (also at half)."""
    us = out["masters_3"]["redis_cpu_us_per_hold"]
    per_master = int(0.5 * 1e6 / us) if us else 0
    per_worker = int(out["masters_1"]["max"]["rate"] * 0.5)
    return {
        "decisions_per_s_per_master_at_half_busy": per_master,
        "holds_per_s_per_gateway_worker_at_half": per_worker,
        "rule": (
            "masters = ceil(peak decisions/s / decisions_per_s_per_master_at_half_busy); "
            "gateway workers (one per core) = ceil(peak holds/s / holds_per_s_per_gateway_worker_at_half)"
        ),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--units", type=int, default=10_000, help="holds in a max-rate phase and in a drain's backlog")
    ap.add_argument("--drain-holds", type=int, default=20_000, help="holds whose events make a drain's backlog")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--participants", type=int, default=50, help="per convênio")
    ap.add_argument("--seed", type=int, default=20261203)
    ap.add_argument("--smoke", action="store_true", help="tiny and fast, figures mean nothing (CI)")
    ap.add_argument("--out", type=Path, help="write the figures (JSON) here")
    args = ap.parse_args(argv)
    if args.smoke:
        args.seconds, args.units, args.concurrency, args.participants, args.drain_holds = 0.5, 300, 8, 10, 300
    embedded.ensure_installed()
    root = Path(tempfile.mkdtemp(prefix="convenio-bench-cluster-", dir="/tmp"))
    root.chmod(0o755)
    out = asyncio.run(run_all(root, args))
    text = json.dumps(out, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
