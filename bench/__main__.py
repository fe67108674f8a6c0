"""The benchmark: the whole stack on loopback, every scenario and every baseline in one run.

    bench/run [--seconds S] [--quick | --smoke] [--scale N] [--only a,b,...] [--out DIR]

Writes bench/results/<date>.json (top-level `ratios`), <date>.md (the summary) and
<date>-latency.png. --smoke runs every scenario and baseline once at a tiny size and fails on
any error: what CI runs after the tests, so a change that breaks a baseline fails CI.
Pinning: see bench/stack.py (PINNING, also in the report). Every loop is
bounded in count and in time.

Scenarios: (a) checkout flow, (b) holds and holds+commits over many participants, (c) a hot
shared pool, (d) mixed with cancels, expiries and idempotent retries, (e) the ledger writer
draining a backlog (bench.ledger_drain), (f) scale: a million participants, (m) the month at
scale: a million participants rolled over while holds go on, duplicatas over ten million
journal rows (bench.month, its own stack), (k) Redis Cluster: holds and Redis CPU per hold on 1
and 3 masters, the writers' drain with one per master, a shard moved during holds
(bench.cluster, its own clusters), (w) holds on 1 and 2 gateway workers, (g) the ERP's way
served like ours: a Starlette + asyncpg gateway with the same endpoints, bodies, auth and
idempotency over a balance row locked by SELECT ... FOR UPDATE (bench.erp_gateway), hot pool
and spread, (y) where a hold's microseconds go (bench.profile, py-spy; not in --smoke). Baselines: (i) a bare
Starlette echo, (ii) the raw hold script pipelined into Redis, (iii) the ERP's way in Postgres
(SELECT ... FOR UPDATE), hot and spread, (iv) raw COPY (within e).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import erp, http_load, month, pg_baseline, redis_ceiling, report, scenarios
from bench.http_load import Result, Work
from bench.stack import PINNING, BenchStack, pin_here, stop, unpin_here
from gateway.platform.passwords import PasswordHasher
from ledger.ops import embedded

RESULTS = Path(__file__).with_name("results")
SCENARIOS = "abcdefgwmky"
GATEWAY_PHASES = "abcdfw"  # the scenarios that run on the stack's gateway (with baseline i)
HOST = "127.0.0.1"


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace, stack: BenchStack) -> None:
        self.args, self.stack = args, stack
        self.rng = random.Random(args.seed)
        self.results: dict[str, Any] = {}
        self.ratios: dict[str, float | None] = {}
        self.notes: list[str] = []
        self.pop: scenarios.Population | None = None  # who scenarios a-f sold to (g sells to them too)

    # -- measuring one scenario: its maximum, then latency at 50 % and 90 % of it -----------------
    async def settle(self, name: str, every_hold: bool = False) -> None:
        """Each phase starts with nothing left for the sweeper and Redis rewriting nothing in the
        background (see BenchStack.settle; in a thread: a load started in the background before
        a phase keeps running while this waits)."""
        waited = await asyncio.to_thread(self.stack.settle, every_hold=every_hold)
        if waited >= 0.1:
            say(f"  (waited {waited:.1f} s for the sweeper and Redis's background work before {name})")
            self.results.setdefault("settled_before_s", {})[name] = round(waited, 1)

    def saw_saves(self, name: str, before: int) -> None:
        """Note a phase during which Redis forked for an AOF rewrite (it grows with every
        decision; past twice its last rewritten size Redis rewrites it): its figures include that."""
        during = self.stack.background_saves() - before
        if during:
            say(f"  ({name}: Redis rewrote its AOF during this phase)")
            self.results.setdefault("aof_rewrite_during", []).append(name)

    async def closed(self, name: str, port: int, work: Work, units: int, concurrency: int, per_unit: int = 1) -> Result:
        await self.settle(name)
        saves = self.stack.background_saves()
        r = await http_load.closed(HOST, port, work, units, concurrency, self.args.seconds, per_unit)
        self.saw_saves(name, saves)
        say(f"  {name:<24} max {r.rate:>8.0f}/s  p50 {r.pct(0.5):6.2f} ms  p99 {r.pct(0.99):7.2f} ms  {r.statuses}")
        return r

    async def opened(
        self, name: str, port: int, work: Work, rate: float, per_unit: int = 1, settle: bool = True
    ) -> Result:
        # a latency phase starts once the holds of the phases before it have all expired: their
        # sweeping would land in this phase's latencies (only holds that are never committed,
        # as in b_hold, all expire; a checkout's do not)
        if settle:  # (False: the caller settled before starting a background load of its own)
            await self.settle(name, every_hold=not self.args.smoke)
        saves = self.stack.background_saves()
        r = await http_load.open_loop(HOST, port, work, rate, self.args.seconds, per_unit=per_unit)
        self.saw_saves(name, saves)
        say(
            f"  {name:<24} @{rate:>7.0f}/s  p50 {r.pct(0.5):6.2f} ms  p99 {r.pct(0.99):7.2f} ms  "
            f"p99.9 {r.pct(0.999):7.2f} ms  late {r.late}  {r.statuses}"
        )
        return r

    async def scenario(
        self,
        name: str,
        port: int,
        work: Work,
        concurrency: int,
        per_unit: int = 1,
        sales: scenarios.Sales | None = None,
        mint: Any = None,
        units: int | None = None,
    ) -> dict[str, Any]:
        units = units or self.args.units
        # the best of http_load.max_loads (a small given load, the checkout's, is kept as it is)
        levels = http_load.max_loads(concurrency) if concurrency >= self.args.concurrency else (concurrency,)
        if sales is not None:
            sales.supply(await mint(min(200, units // 10) + units * len(levels)))
        await http_load.closed(HOST, port, work, min(200, units // 10), concurrency, 10)  # warm-up
        tried = {n: await self.closed(f"{name} ({n} conns)", port, work, units, n, per_unit) for n in levels}
        best = max(tried, key=lambda n: tried[n].rate)
        peak = tried[best]
        out: dict[str, Any] = {
            "max": peak.summary(),
            "concurrency": best,
            "max_by_concurrency": {str(n): r.summary() for n, r in tried.items()},
        }
        for share in (0.5, 0.9):
            rate = peak.rate * share
            if sales is not None:
                sales.supply(await mint(int(rate * self.args.seconds) + 10))
            r = await self.opened(f"{name} {int(share * 100)}%", port, work, rate, per_unit)
            out[f"at_{int(share * 100)}"] = r.summary() | {"percentiles": report.percentiles(r.latencies_ms)}
        self.results[name] = out
        return out

    # -- the phases ----------------------------------------------------------------------------------
    async def gateway_phases(self) -> None:
        s, args = self.stack, self.args
        svc = await s.gateway()
        try:
            say("preparing: participants and keys")
            pop = self.pop = await scenarios.populate(svc, args.participants, 100, 50, self.rng)

            def minter(convenio: str, codes: list[str]):
                async def mint(n: int) -> list[tuple[str, str]]:
                    return await scenarios.mint(svc, convenio, codes, n, self.rng)

                return mint

            spread, hot = minter("SPREAD", pop.spread), minter("HOT", pop.hot)
            echo_proc, echo_port = s.serve_echo()
            gw_proc, port = s.serve_gateway()
            try:
                sample = scenarios.hold_request(pop, "SPREAD", "S000001", "x" * 43, "k").split(b"\r\n\r\n", 1)[1]
                say("(i) echo, one worker")
                echo = await self.scenario("echo", echo_port, scenarios.echo(sample), args.concurrency)
                if "b" in args.only:
                    say("(b) holds, many participants")
                    sales = scenarios.Sales(pop, "SPREAD", [], self.rng)
                    hold = await self.scenario("b_hold", port, sales.hold(), args.concurrency, sales=sales, mint=spread)
                    self.ratios["hold_vs_echo"] = round(hold["max"]["rate"] / echo["max"]["rate"], 3)
                    rate = hold["max"]["rate"] * 0.5
                    r = await self.opened("echo @ hold 50%", echo_port, scenarios.echo(sample), rate)
                    self.results["echo_at_hold_50"] = r.summary()
                    self.ratios["hold_p99_vs_echo_p99_at_50"] = round(hold["at_50"]["p99_ms"] / r.pct(0.99), 2)
                    say("(b) holds then commits")
                    sales = scenarios.Sales(pop, "SPREAD", [], self.rng)
                    await self.scenario(
                        "b_hold_commit", port, sales.hold_commit(), args.concurrency, 2, sales=sales, mint=spread
                    )
                    say("AOF: holds with appendfsync always, then everysec")
                    await self.aof(svc, port, pop, spread)
                if "c" in args.only:
                    say("(c) hot shared pool: hold then commit, every terminal on one convênio")
                    sales = scenarios.Sales(pop, "HOT", [], self.rng)
                    await self.scenario("c_hot_pool", port, sales.hold_commit(), args.concurrency, 2, sales, hot)
                if "d" in args.only:
                    say("(d) mixed: commits, cancels, expiries, idempotent retries")
                    sales = scenarios.Sales(pop, "SPREAD", [], self.rng)
                    await self.scenario("d_mixed", port, sales.mixed(), args.concurrency, sales=sales, mint=spread)
                if "a" in args.only:
                    say("(a) checkout flow: limit -> password -> hold -> commit")
                    await self.scenario(
                        "a_checkout", port, scenarios.checkout(pop, self.rng), 4, 4, units=args.units // 20
                    )
            finally:
                stop(gw_proc)
                stop(echo_proc)
            if "w" in args.only:
                await self.workers(pop, spread)
            if "a" in args.only:
                await self.passwords(pop, spread)
            if "f" in args.only:
                await self.scale(svc, pop, spread)
        finally:
            await svc.close()

    async def aof(self, svc, port: int, pop: scenarios.Population, spread) -> None:
        rates = {}
        for mode in ("always", "everysec"):
            await svc.redis.config_set("appendfsync", mode)
            sales = scenarios.Sales(pop, "SPREAD", await spread(self.args.units), self.rng)
            r = await self.closed(f"b_hold aof {mode}", port, sales.hold(), self.args.units, self.args.concurrency)
            rates[mode] = r.summary()
        await svc.redis.config_set("appendfsync", self.stack.appendfsync)
        self.results["aof"] = rates
        self.ratios["aof_always_vs_everysec"] = round(rates["always"]["rate"] / rates["everysec"]["rate"], 3)
        # hold_vs_echo without each decision's fsync: what the gateway worker itself reaches
        echo = self.results.get("echo", {}).get("max", {}).get("rate")
        if echo:
            self.ratios["hold_everysec_vs_echo"] = round(rates["everysec"]["rate"] / echo, 3)

    async def workers(self, pop: scenarios.Population, spread) -> None:
        say("(w) holds on 1 and then 2 gateway workers, unpinned (the machine's cores shared with Redis and the load)")
        out: dict[str, Any] = {}
        for n in (1, 2):
            proc, port = self.stack.serve_gateway(cores=None, workers=n)
            try:
                sales = scenarios.Sales(pop, "SPREAD", [], self.rng)
                sales.supply(await spread(self.args.units + 200))
                await http_load.closed(HOST, port, sales.hold(), 200, self.args.concurrency, 10)  # warm-up
                r = await self.closed(
                    f"b_hold, {n} worker(s)", port, sales.hold(), self.args.units, self.args.concurrency
                )
                out[f"workers_{n}"] = r.summary()
            finally:
                stop(proc)
        self.results["w_workers"] = out
        self.ratios["holds_2_vs_1_workers"] = round(out["workers_2"]["rate"] / out["workers_1"]["rate"], 3)

    async def passwords(self, pop: scenarios.Population, spread) -> None:
        say("password checks against the cores' ceiling (gateway unpinned, 2 argon2 threads)")
        hasher = PasswordHasher(b"bench", 1)
        stored = hasher.hash_sync("123456")
        times = []
        for _ in range(20):
            started = time.perf_counter()
            hasher.verify_sync(stored, "123456")
            times.append(time.perf_counter() - started)
        hasher.close()
        one = statistics.median(times)
        cores = len(os.sched_getaffinity(0) | {0, 1})
        ceiling = cores / one
        proc, port = self.stack.serve_gateway(cores=None, threads=cores)
        try:
            work = scenarios.password_checks(pop, self.rng)
            await http_load.closed(HOST, port, work, 20, 4, 10)
            # the holds phases' empenhos all expire first: the argon2 threads run at nice 10, so
            # the sweeper expiring thousands of them would take the cores the checks are measured on
            await self.settle("password checks", every_hold=True)
            r = await self.closed("password checks", port, work, 100_000, 4 * cores)
            self.results["password"] = r.summary() | {"one_verify_ms": round(one * 1000, 2), "ceiling_per_s": ceiling}
            self.ratios["password_vs_ceiling"] = round(r.rate / ceiling, 3)
            # holds at half their own maximum, alone and then under a saturating password load
            sales = scenarios.Sales(pop, "SPREAD", [], self.rng)
            peak = self.results.get("b_hold", {}).get("max", {}).get("rate", 1000)
            rate = peak * 0.5
            sales.supply(await spread(int(rate * self.args.seconds * 2) + 220))
            # this gateway has served password checks only: warm its holds path up first
            await http_load.closed(HOST, port, sales.hold(), 200, 8, 10)
            alone = await self.opened("holds alone (unpinned)", port, sales.hold(), rate)
            # settled before the password load starts: the holds phase must run inside that load
            await self.settle("holds + password load", every_hold=not self.args.smoke)
            load = asyncio.create_task(http_load.closed(HOST, port, work, 100_000, 4 * cores, self.args.seconds + 2))
            await asyncio.sleep(0.5)
            with_pw = await self.opened("holds + password load", port, sales.hold(), rate, settle=False)
            await load
            self.results["holds_under_password_load"] = {"alone": alone.summary(), "with_passwords": with_pw.summary()}
            self.ratios["hold_p99_with_passwords_vs_alone"] = round(with_pw.pct(0.99) / alone.pct(0.99), 2)
        finally:
            stop(proc)

    async def scale(self, svc, pop: scenarios.Population, spread) -> None:
        n = self.args.scale
        say(f"(f) scale: {n:,} participants")
        await scenarios._convenio(svc, "SCALE", shared=False)
        before = await self._memory(svc)
        codes = [f"M{i:07d}" for i in range(n)]
        started = time.perf_counter()
        for start in range(0, n, 20_000):
            await scenarios.bulk_participants(svc, "SCALE", codes[start : start + 20_000])
            if start and start % 200_000 == 0:
                say(f"  loaded {start:,} in {time.perf_counter() - started:.0f} s")
        loaded_s = time.perf_counter() - started
        after = await self._memory(svc)
        per = (after - before) / n
        proc, port = self.stack.serve_gateway()
        try:
            out: dict[str, Any] = {"participants": n, "load_seconds": round(loaded_s, 1)}
            out["redis_bytes_per_participant"] = round(per, 1)
            for label, convenio, codes_ in (("thousand", "SPREAD", pop.spread), ("scale", "SCALE", codes)):
                minted = await scenarios.mint(svc, convenio, codes_, self.args.units, self.rng)
                sales = scenarios.Sales(pop, convenio, minted, self.rng)
                r = await self.closed(f"holds over {label}", port, sales.hold(), self.args.units, self.args.concurrency)
                out[label] = r.summary()
            out["hold_rate_scale_vs_thousand"] = round(out["scale"]["rate"] / out["thousand"]["rate"], 3)
            self.results["f_scale"] = out
            self.ratios["scale_hold_rate_vs_thousand"] = out["hold_rate_scale_vs_thousand"]
        finally:
            stop(proc)

    async def _memory(self, svc) -> int:
        """Redis's used memory, less what the event streams hold (the writer trims those)."""
        info = await svc.redis.info("memory")
        streams = 0
        for key in svc.keys.all_events():
            streams += await svc.redis.memory_usage(key, samples=0) or 0
        return int(info["used_memory"]) - streams

    async def postgres(self) -> None:
        say("(iii) the ERP's way: one Postgres transaction with SELECT ... FOR UPDATE (all cores)")
        unpin_here()  # Postgres and its backends inherit this: every core
        pg = embedded.EmbeddedPostgres(self.stack.root / "postgres", durable=True).start()
        pin_here()
        try:
            url = pg.url.rsplit("/", 1)[0] + "/postgres"
            await pg_baseline.prepare(url)
            out: dict[str, Any] = {"settings": await pg_baseline.settings(url)}
            for label, hot in (("hot", True), ("spread", False)):
                r = await pg_baseline.run(url, hot, 1_000_000, self.args.concurrency, self.args.seconds)
                say(f"  postgres {label:<15} {r.rate:>8.0f} tx/s  p50 {r.pct(0.5):6.2f} ms  p99 {r.pct(0.99):7.2f} ms")
                out[label] = r.summary()
            self.results["postgres_for_update"] = out
            ours = self.results.get("c_hot_pool", {}).get("max", {}).get("rate")
            if ours:
                self.ratios["hot_pool_vs_postgres"] = round(ours / out["hot"]["rate"], 2)
        finally:
            pg.stop()

    async def erp_gateway(self) -> None:
        say("(g) the ERP's way served like ours: Starlette + asyncpg, SELECT ... FOR UPDATE (Postgres on all cores)")
        assert self.pop is not None
        a = self.args
        out = await erp.compare(
            self.stack.root, self.pop, a.seconds, a.units, a.concurrency, self.results, self.rng, self.stack.hold_ttl_s
        )
        self.results["erp_gateway"] = out
        self.ratios.update(out["ratios"])
        for failure in erp.failures(out):
            self.notes.append(f"scenario g failed: {failure}")

    async def redis_raw(self) -> None:
        say("(ii) the raw hold script pipelined into Redis (client on core 0)")
        os.sched_setaffinity(0, {0})
        svc = await self.stack.gateway()
        try:
            pop = await scenarios.populate(svc, 200, 1, 1, self.rng)
            minted = await scenarios.mint(svc, "SPREAD", pop.spread, self.args.units * 2, self.rng)
            assert self.stack.redis.proc is not None
            cost = redis_ceiling.Cost(svc, self.stack.redis.proc.pid)
            held: list[tuple[str, str]] = []
            cpu = redis_ceiling.cpu_seconds(self.stack.redis.proc.pid)
            await cost.start()
            r = await redis_ceiling.run(svc, pop.token, "SPREAD", minted, held=held)
            hold_cost = await cost.stop(r.requests)
            busy = (redis_ceiling.cpu_seconds(self.stack.redis.proc.pid) - cpu) / r.seconds
            say(f"  raw empenho_hold.lua          {r.rate:>8.0f}/s  redis busy {busy:.0%}  {r.statuses}")
            say(f"    per hold: {hold_cost}")
            self.results["redis_raw_hold"] = r.summary() | {"pipeline_depth": 200, "redis_busy": round(busy, 2)}
            self.results["redis_raw_hold"]["cost"] = hold_cost
            self.ratios["redis_us_per_hold"] = hold_cost["redis_us_per_call"]
            await cost.start()
            c = await redis_ceiling.commits(svc, "SPREAD", held)
            commit_cost = await cost.stop(c.requests)
            say(f"  raw empenho_commit.lua        {c.rate:>8.0f}/s  {c.statuses}")
            say(f"    per commit: {commit_cost}")
            self.results["redis_raw_commit"] = c.summary() | {"cost": commit_cost}
            self.ratios["redis_us_per_commit"] = commit_cost["redis_us_per_call"]
            # the client (one Python process) may be the limit: Redis's own capacity at 100 % busy
            self.results["redis_raw_hold"]["redis_capacity_estimate_per_s"] = round(r.rate / max(busy, 0.01))
            hold = self.results.get("b_hold", {}).get("max", {}).get("rate")
            if hold:
                self.ratios["hold_vs_redis_raw"] = round(hold / r.rate, 3)
        finally:
            await svc.close()
            pin_here()

    def month(self) -> None:
        a = self.args
        say(f"(m) the month at scale: {a.month_participants:,} participants rolled over while holds go on;")
        say(f"    duplicatas over {a.month_journal_rows:,} journal rows (bench.month, its own Redis and Postgres)")
        out = month.run(self.stack.root / "month", a.month_participants, a.month_journal_rows, a.seconds, seed=a.seed)
        self.results["m_month"] = out
        self.ratios.update(out["ratios"])

    def cluster(self) -> None:
        say("(k) Redis Cluster: 1 and 3 masters, writers one per master, a reshard during holds (bench.cluster)")
        a = self.args
        path = self.stack.root / "cluster.json"
        cmd = [sys.executable, "-m", "bench.cluster", "--out", str(path), "--seed", str(a.seed)]
        cmd += ["--smoke"] if a.smoke else ["--seconds", str(a.seconds), "--units", str(a.units // 2)]
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=sys.stderr, timeout=1800)
        if done.returncode != 0:
            self.notes.append(f"scenario k failed (exit {done.returncode})")
            return
        out = json.loads(path.read_text())
        self.results["k_cluster"] = out
        self.ratios.update(out["ratios"])

    def profile(self) -> None:
        say("(y) where a hold's time goes: py-spy on one gateway worker at max rate (bench.profile)")
        path = self.stack.root / "profile.md"
        # enough holds to outlast py-spy's 3 s of sampling at this machine's rate (a short run sampled ~200)
        holds = max(self.args.units * 2, 40_000)
        cmd = [sys.executable, "-m", "bench.profile", "--holds", str(holds), "--out", str(path)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            self.notes.append(f"scenario y failed: {done.stderr[-300:]}")
            return
        self.results["y_profile"] = path.read_text()

    def ledger(self) -> None:
        say("(e) ledger writer draining a backlog, against raw COPY (bench.ledger_drain)")
        cmd = [sys.executable, "-m", "bench.ledger_drain", "--events", str(self.args.ledger_events)]
        path = self.stack.root / "ledger.json"
        cmd += ["--writers", "1,2", "--repeat", "1", "--out", str(path)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            self.notes.append(f"ledger_drain failed: {done.stderr[-500:]}")
            return
        out = json.loads(path.read_text())
        self.results["e_ledger"] = {k: out.get(k) for k in ("events", "events_per_s", "copy_rows_per_s", "ratios")}
        one = out.get("results", {}).get("writers_1", {}).get("runs", [{}])[0]
        if one.get("cpu_s") and one.get("events"):  # CPU per stored event: the writer's and Postgres's
            self.results["e_ledger"]["writer_us_per_event"] = round(
                one["cpu_s"]["bench_process"] * 1e6 / one["events"], 1
            )
            self.results["e_ledger"]["postgres_us_per_event"] = round(one["cpu_s"]["postgres"] * 1e6 / one["events"], 1)
        self.ratios["ledger_vs_copy"] = out["ratios"]["ledger_vs_copy"]
        drained = out["events_per_s"]
        drained = drained if isinstance(drained, dict) else {"writers_1": drained}
        two = out.get("results", {}).get("writers_2", {}).get("events_per_s")
        if two:
            drained["writers_2"] = two
            self.results["e_ledger"]["events_per_s"] = drained
        peak = self.results.get("b_hold", {}).get("max", {}).get("rate")  # the gateway's peak decisions/s
        if peak:
            self.ratios["ledger_vs_peak"] = round(drained["writers_1"] / peak, 2)
            if "writers_2" in drained:
                self.ratios["ledger_vs_peak_2_writers"] = round(drained["writers_2"] / peak, 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each measured phase (default 5)")
    ap.add_argument("--units", type=int, default=20_000, help="most units of work in a max-rate phase")
    ap.add_argument("--concurrency", type=int, default=32, help="connections in the max-rate phases")
    ap.add_argument("--participants", type=int, default=1000, help="participants of the spread convênio")
    ap.add_argument("--scale", type=int, default=1_000_000, help="participants loaded for scenario (f)")
    ap.add_argument("--ledger-events", type=int, default=50_000, help="backlog for scenario (e)")
    ap.add_argument("--month-participants", type=int, default=1_000_000, help="rolled over in scenario (m)")
    ap.add_argument("--month-journal-rows", type=int, default=10_000_000, help="journal rows for scenario (m)")
    ap.add_argument(
        "--only",
        default=SCENARIOS + "pr",
        help="scenarios to run: a-g (g: the ERP's gateway; needs b and c first), w (1 and 2 gateway workers), "
        "k (cluster), m (month), y (profile), "
        "p (postgres), r (redis raw)",
    )
    ap.add_argument(
        "--quick", action="store_true", help="2 s phases, 100k participants, 20k events, a small month: a short run"
    )
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="every scenario and baseline once, tiny and fast, failing on any error (CI); figures mean nothing",
    )
    ap.add_argument("--out", type=Path, help="where the report goes (default bench/results/; --smoke: a temporary one)")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument(
        "--server",
        choices=["uvicorn", "granian"],
        default="uvicorn",
        help="HTTP server of the gateway and the echo alike (granian: measured against uvicorn, not adopted)",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.units, args.scale, args.ledger_events = 2.0, 5_000, 100_000, 20_000
        args.month_participants, args.month_journal_rows = 50_000, 500_000
    if args.smoke:
        args.seconds, args.units, args.concurrency, args.participants = 0.5, 400, 8, 100
        args.scale, args.ledger_events, args.month_participants, args.month_journal_rows = 2_000, 2_000, 2_000, 20_000
    pin_here()
    root = Path(tempfile.mkdtemp(prefix="convenio-bench-", dir="/tmp"))
    root.chmod(0o755)
    stack = BenchStack(root, server=args.server).start()
    bench = Bench(args, stack)
    started = time.perf_counter()
    try:
        if set(args.only) & set(GATEWAY_PHASES):
            asyncio.run(bench.gateway_phases())
        if "r" in args.only:
            stack.redis.stop()
            stack.redis = embedded.EmbeddedRedis(root / "redis-raw", appendfsync="always").start()
            asyncio.run(bench.redis_raw())
        if "p" in args.only:
            asyncio.run(bench.postgres())
        if "g" in args.only and bench.pop is not None:
            asyncio.run(bench.erp_gateway())
    finally:
        stack.stop()
    if "e" in args.only:
        try:
            bench.ledger()
        except Exception as exc:  # a broken phase is a note in the report, not a lost run
            bench.notes.append(f"scenario e failed: {exc!r}")
    if "y" in args.only and not args.smoke:  # py-spy samples a process: a profile is no smoke test
        bench.profile()
    if "k" in args.only:
        try:
            bench.cluster()
        except Exception as exc:
            bench.notes.append(f"scenario k failed: {exc!r}")
    if "m" in args.only:
        try:
            bench.month()
        except Exception as exc:
            bench.notes.append(f"scenario m failed: {exc!r}")
    failed = [n for n in bench.notes if "failed" in n]
    doc = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "cpu": report.cpu_model()},
        "pinning": PINNING,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        | {"redis_appendfsync": stack.appendfsync, "hold_ttl_s": stack.hold_ttl_s},
        "seconds": round(time.perf_counter() - started, 1),
        "ratios": bench.ratios,
        "targets": report.TARGETS,
        "results": bench.results,
        "capacity": report.capacity(bench.results),
        "notes": bench.notes,
    }
    out = args.out or (root / "report" if args.smoke else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / datetime.date.today().isoformat()
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    stem.with_suffix(".md").write_text(report.markdown(doc, f"{stem.name}-latency.png"))
    report.plot(doc, stem.parent / f"{stem.name}-latency.png")
    say(f"ratios: {json.dumps(bench.ratios)}")
    say(f"written {stem}.json, {stem}.md, {stem}-latency.png")
    if args.smoke:
        say(f"smoke run: every scenario ran in {doc['seconds']} s" if not failed else f"smoke run FAILED: {failed}")
    shutil.rmtree(root, ignore_errors=True)
    return 1 if args.smoke and failed else 0


if __name__ == "__main__":
    sys.exit(main())
