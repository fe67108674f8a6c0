"""Benchmark of the ledger writer: how fast it drains a backlog of events from the Redis streams
into Postgres (journal + projections), against the raw COPY ceiling of the same rows into the
journal table, in one run on this machine.

    .venv/bin/python -m bench.ledger_drain [--events N] [--writers 1,2] [--repeat R] [--profile]

A private Redis and a private, durable Postgres (EmbeddedPostgres(durable=True): fsync,
synchronous_commit and full_page_writes on, the settings the ledger runs with) start on free
ports. A backlog of about N events is built through the real Lua scripts (password checks,
holds, commits, cancels, a few declines) and kept aside, so every phase drains the very same
streams into a freshly migrated database, right after a CHECKPOINT:

- writers=K: K ledger.writer.writer.Writer loops (one event loop, this process) run rounds until the
  ledger lag is 0; events/s.
- copy: the same rows (protocol, shard, stream_id, type, at, data) COPY'd with asyncpg
  copy_records_to_table into the journal table of a fresh database (logged, with its primary
  key, indexes and CHECK): once in one transaction (the ceiling), and in batches of the
  writer's batch size, one transaction each.

The modes run interleaved R times (default 3) and medians are reported; each run records the
CPU its processes and cores used. Pinning (2 cores or more): this process (backlog builder,
writers, COPY client) on core 0; Redis and every Postgres process on core 1. Each phase has a
timeout. Writes bench/results/<date>-ledger.json with ratios.ledger_vs_copy and prints a
summary; --profile adds, outside the figures, drains with the writers' Postgres backends
sampled in pg_stat_activity and a single-writer drain under cProfile with a wall-time
breakdown of the writer's steps.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime
import functools
import io
import json
import os
import platform
import pstats
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg

from bench.report import cpu_model
from gateway.auth import apikeys
from gateway.auth.permissions import Permission
from gateway.holds import empenhos
from gateway.holds.schemas import CancelRequest, CommitRequest, EmpenhoRequest, Vehicle
from gateway.platform.config import Settings
from gateway.platform.errors import ApiError
from gateway.platform.services import Services
from gateway.platform.streams import ledger_lag
from gateway.registry import convenios as registry_convenios
from gateway.registry import participants as registry_participants
from gateway.registry import vehicles
from gateway.registry.schemas import ConvenioCreate, ParticipantCreate, VehicleSave
from ledger.ops import embedded
from ledger.ops.migrate import migrate
from ledger.writer import fold as projections
from ledger.writer import writer
from tests.checkout import mint_proof

RESULTS = Path(__file__).with_name("results")
COLUMNS = ["protocol", "shard", "stream_id", "type", "at", "data"]

Dump = dict[str, list[tuple[bytes, dict[bytes, bytes]]]]  # stream -> [(id, fields)]


# -- servers and pinning ------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(entry))
    return kids


def _proc_cpu(pid: int, children_too: bool = False) -> float:
    """CPU seconds of a process (and, for the postmaster, of the backends it has reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children_too else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds spent during a phase by this process, by Postgres (every process) and by
    Redis: which side of the ping-pong is busy."""

    def __init__(self, redis: embedded.EmbeddedRedis, pg: embedded.EmbeddedPostgres) -> None:
        self.redis_pid, self.pg_pid = redis.proc.pid, pg.proc.pid

    def sample(self) -> dict[str, float]:
        pg = _proc_cpu(self.pg_pid, children_too=True) + sum(_proc_cpu(c) for c in _children(self.pg_pid))
        t = os.times()
        out = {"bench_process": t.user + t.system, "postgres": pg, "redis": _proc_cpu(self.redis_pid)}
        # whole cores, whoever ran there (/proc/stat: user nice system idle iowait irq softirq steal)
        tick = os.sysconf("SC_CLK_TCK")
        for line in Path("/proc/stat").read_text().splitlines():
            name, *v = line.split()
            if name in ("cpu0", "cpu1"):
                n = [int(x) for x in v]
                out[f"{name}_busy"] = (n[0] + n[1] + n[2] + n[5] + n[6]) / tick
                out[f"{name}_iowait"] = n[4] / tick
                out[f"{name}_steal"] = n[7] / tick
        return out

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, Any]:
        cpu = {k: round(after[k] - before[k], 2) for k in before}
        return {"cpu_s": cpu, "busy": {k: round(v / seconds, 2) for k, v in cpu.items()}}


def _pin_servers(redis: embedded.EmbeddedRedis, pg: embedded.EmbeddedPostgres) -> str:
    if (os.cpu_count() or 1) < 2:
        return "none (one core)"
    os.sched_setaffinity(0, {0})
    subprocess.run(["taskset", "-a", "-p", "-c", "1", str(redis.proc.pid)], check=True, stdout=subprocess.DEVNULL)
    # the postmaster and its auxiliaries now; backends forked later inherit the postmaster's
    for pid in [pg.proc.pid, *_children(pg.proc.pid)]:
        try:
            os.sched_setaffinity(pid, {1})
        except OSError:
            pass
    return "this process (backlog, writers, COPY client) on core 0; Redis and every Postgres process on core 1"


async def _fresh_database(pg: embedded.EmbeddedPostgres, name: str) -> str:
    url = pg.url.rsplit("/", 1)[0] + "/" + name
    await migrate(url)
    return url


async def _pg_settings(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        names = ("server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_level", "shared_buffers")
        return {n: await conn.fetchval(f"SHOW {n}") for n in names}
    finally:
        await conn.close()


# -- the backlog --------------------------------------------------------------------------------
class Backlog:
    """A few convênios (one shared), many participants without passwords (argon2 would cost
    ~30 ms each), vehicles for some, then sales: proof -> hold -> commit / cancel / left
    pending, with a few declines and failed password checks."""

    def __init__(self, svc: Services, convenios: int, participants: int, seed: int = 7) -> None:
        self.svc = svc
        self.n_convenios = convenios
        self.n_participants = participants
        self.rng = random.Random(seed)
        self.who: list[tuple[str, str, str]] = []  # (convênio, participant, plate or "")
        self.api_key_id = ""
        self.sales = 0
        self.km: dict[tuple[str, str], int] = defaultdict(int)

    async def setup(self, chunk: int) -> None:
        svc = self.svc
        _, key = await apikeys.create(svc, frozenset(Permission), name="bench")
        self.api_key_id = key.id
        codes = [f"EMP{c:03d}" for c in range(self.n_convenios)]
        for c, code in enumerate(codes):
            body = ConvenioCreate(code=code, name=f"EMPRESA {code}", total_limit=10**11, tolerance=0, shared=c == 0)
            await registry_convenios.save_convenio(svc, code, body)
        people = [(codes[i % len(codes)], f"CLI{i:06d}") for i in range(self.n_participants)]

        async def add(conv: str, part: str, i: int) -> None:
            await registry_participants.save_participant(
                svc, conv, part, ParticipantCreate(code=part, name=f"CLIENTE {part}", limit=10**7)
            )
            plate = ""
            if i % 10 == 0:  # one in ten drives a registered vehicle
                plate = f"BEN{i:04d}"[-7:]
                await vehicles.save_vehicle(svc, conv, part, VehicleSave(plate=plate, description="frota"))
            self.who.append((conv, part, plate))

        for start in range(0, len(people), chunk):
            await asyncio.gather(*(add(c, p, start + j) for j, (c, p) in enumerate(people[start : start + chunk])))

    async def sale(self, i: int) -> None:
        svc, rng = self.svc, self.rng
        conv, part, plate = self.who[rng.randrange(len(self.who))]
        if rng.random() < 0.01:  # a wrong password first
            await svc.run(
                "password_result",
                [
                    svc.keys.password_lockout(part),
                    svc.keys.password_checks(part),
                    svc.keys.events(svc.keys.shard_of(part)),
                ],
                ["0", svc.now_ms(), svc.protocol(), 5, 900_000, 0, conv, part],
            )
        proof = None if rng.random() < 0.02 else await mint_proof(svc, conv, part)  # no proof: declined
        vehicle = None
        if plate:
            self.km[(conv, part)] += rng.randrange(10, 400)
            vehicle = Vehicle(plate=plate, odometer_km=self.km[(conv, part)])
        amount = rng.randrange(500, 30_000)
        req = EmpenhoRequest(
            convenio=conv,
            participant=part,
            amount=amount,
            terminal=f"PDV{i % 24:02d}",
            store=f"LOJA{i % 7:02d}",
            sale=f"V{i:08d}",
            proof=proof,
            vehicle=vehicle,
        )
        try:
            held = await empenhos.hold(svc, self.api_key_id, f"bench-{i}", req)
        except ApiError:
            return  # declined: the decision is in the stream all the same
        eid = held.body.id
        r = rng.random()
        if r < 0.85:
            final = amount if rng.random() < 0.7 else max(1, amount - rng.randrange(1, amount))
            await empenhos.commit(svc, eid, CommitRequest(coupon=f"CUPOM-{i}", amount=final))
        elif r < 0.95:
            await empenhos.cancel(svc, eid, CancelRequest(reason="cliente desistiu"))
        # else: left PENDING

    async def build(self, target: int, chunk: int) -> int:
        events = await stream_total(self.svc)
        while events < target:
            # ~3.1 events a sale; aim a little under the target, then top up
            n = max(1, min(chunk, (target - events) // 3))
            await asyncio.gather(*(self.sale(self.sales + j) for j in range(n)))
            self.sales += n
            events = await stream_total(self.svc)
        return events


async def stream_total(svc: Services) -> int:
    return sum([await svc.redis.xlen(s) for s in svc.keys.all_events()])


async def _stream_lengths(svc: Services) -> dict[str, int]:
    return {s: await svc.redis.xlen(s) for s in svc.keys.all_events()}


async def dump_streams(svc: Services) -> Dump:
    out: Dump = {}
    for stream in svc.keys.all_events():
        entries: list = []
        start = "-"
        while True:
            page = await svc.redis.xrange(stream, start, "+", count=10_000)
            entries += page
            if len(page) < 10_000:
                break
            start = "(" + page[-1][0].decode()
        out[stream] = entries
    return out


async def restore_streams(svc: Services, dump: Dump) -> None:
    """The streams exactly as they were before the first drain (same ids, no group)."""
    for stream, entries in dump.items():
        await svc.redis.delete(stream)
        for start in range(0, len(entries), 5_000):
            async with svc.redis.pipeline(transaction=False) as pipe:
                for sid, fields in entries[start : start + 5_000]:
                    pipe.xadd(stream, fields, id=sid)
                await pipe.execute()


def copy_rows(svc: Services, dump: Dump) -> list[tuple]:
    rows = []
    for stream, entries in dump.items():
        shard = svc.keys.all_events()[stream]
        for sid, f in entries:
            at = datetime.datetime.fromtimestamp(int(f[b"at"]) / 1000, datetime.UTC)
            rows.append((f[b"protocol"].decode(), shard, sid.decode(), f[b"type"].decode(), at, f[b"data"].decode()))
    return rows


def type_mix(dump: Dump) -> dict[str, int]:
    mix: dict[str, int] = defaultdict(int)
    for entries in dump.values():
        for _, f in entries:
            mix[f[b"type"].decode()] += 1
    return dict(sorted(mix.items(), key=lambda kv: -kv[1]))


# -- phase (a): the ledger writer -------------------------------------------------------------
async def drain(
    svc: Services, url: str, writers: int, batch: int, events: int, meter: CpuMeter | None = None
) -> dict[str, Any]:
    await writer.ensure_groups(svc)
    assert await ledger_lag(svc) == events, "the restored streams are not the backlog"
    ws = [writer.Writer(svc, url, f"bench-{i}", batch=batch) for i in range(writers)]
    for w in ws:  # all connected before the first rebalance: fair shares from the first round
        await w.connect()
    rounds = [0] * writers

    async def loop(i: int, w: writer.Writer) -> None:
        while True:
            n = await w.round()
            rounds[i] += 1
            if n == 0:
                if await ledger_lag(svc) == 0:
                    return
                await asyncio.sleep(0.005)  # our streams are done, another writer's are not

    loaded = {s for s, entries in (await _stream_lengths(svc)).items() if entries}
    cpu0 = meter.sample() if meter else None
    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(loop(i, w) for i, w in enumerate(ws)))
        seconds = time.perf_counter() - t0
        cpu = CpuMeter.spent(cpu0, meter.sample(), seconds) if meter and cpu0 else {}
        per_writer = [
            {"consumer": w.consumer, "stored": w.stored, "streams_with_events": len(w.owned & loaded)} for w in ws
        ]
    finally:
        for w in ws:
            await w.close()
    stored = sum(w.stored for w in ws)
    conn = await asyncpg.connect(url)
    try:
        journal = await conn.fetchval("SELECT count(*) FROM journal")
        tables = {
            t: await conn.fetchval(f"SELECT count(*) FROM {t}")  # noqa: S608 - our own names
            for t in ("empenhos", "empenho_history", "movements", "decisions", "participants", "vehicles")
        }
    finally:
        await conn.close()
    if journal != events or stored != events:
        raise RuntimeError(f"drained {stored}, journal holds {journal}, the backlog was {events}")
    return {
        "writers": writers,
        "batch": batch,
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds, 1),
        "rounds": rounds,
        "per_writer": per_writer,
        **cpu,
        "rows": {"journal": journal, **tables},
    }


# -- phase (b): the COPY ceiling --------------------------------------------------------------
async def copy_ceiling(url: str, rows: list[tuple], batch: int, meter: CpuMeter | None = None) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        cpu0 = meter.sample() if meter else None
        t0 = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("journal", records=rows, columns=COLUMNS)
        one = time.perf_counter() - t0
        cpu = CpuMeter.spent(cpu0, meter.sample(), one) if meter and cpu0 else {}
        await conn.execute("TRUNCATE journal")
        await conn.execute("CHECKPOINT")
        t0 = time.perf_counter()
        for start in range(0, len(rows), batch):
            async with conn.transaction():
                await conn.copy_records_to_table("journal", records=rows[start : start + batch], columns=COLUMNS)
        batched = time.perf_counter() - t0
        assert await conn.fetchval("SELECT count(*) FROM journal") == len(rows)
    finally:
        await conn.close()
    return {
        "table": "journal of a fresh migrated database: logged, primary key, 2 indexes, CHECK",
        "rows": len(rows),
        "one_transaction": {"seconds": round(one, 3), "rows_per_s": round(len(rows) / one, 1), **cpu},
        "batched": {"batch": batch, "seconds": round(batched, 3), "rows_per_s": round(len(rows) / batched, 1)},
    }


# -- --profile: where a round's time goes -----------------------------------------------------
class Breakdown:
    """Wall time per step of the writer, by wrapping (in this process only) the calls it
    makes. Steps nest: store_events holds journal_insert, projections and commit."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._undo: list[tuple[Any, str, Any]] = []

    def _add(self, key: str, t0: float) -> None:
        self.seconds[key] += time.perf_counter() - t0
        self.calls[key] += 1

    def wrap_async(self, owner: Any, name: str, key: Any) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                self._add(key(args) if callable(key) else key, t0)

        self._undo.append((owner, name, original))
        setattr(owner, name, timed)

    def wrap_sync(self, owner: Any, name: str, key: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self._add(key, t0)

        self._undo.append((owner, name, original))
        setattr(owner, name, timed)

    def install(self, svc: Services) -> None:
        for cmd in ("xreadgroup", "xautoclaim", "xack", "xpending", "xinfo_groups", "xtrim"):
            self.wrap_async(svc.redis, cmd, f"redis {cmd}")
        self.wrap_async(svc, "run", lambda a: f"redis script {a[0]}")  # e.g. ledger_trim
        self.wrap_sync(writer, "to_event", "to_event (json decode, datetime)")
        self.wrap_async(writer, "store_events", "store_events (one transaction)")
        self.wrap_sync(projections.Fold, "add", "  projections fold (Python)")
        self.wrap_async(projections.Fold, "write", "  projections write")

        def sql(args: tuple) -> str:
            text = " ".join(str(args[1]).split())
            if "INSERT INTO journal" in text:
                return "  journal INSERT .. unnest .. RETURNING"
            if "ledger_streams" in text:
                return "  ledger_streams progress"
            if text.rstrip(";") in ("BEGIN", "COMMIT"):
                return "  " + text.rstrip(";")
            for word in ("INSERT INTO", "UPDATE", "DELETE FROM"):
                if text.startswith(word):
                    return f"      {word.split()[0]} {text[len(word) :].split()[0]}"
            return "other SQL: " + text[:40]

        for method in ("fetch", "execute", "executemany", "fetchval"):
            self.wrap_async(asyncpg.Connection, method, lambda a, m=method: f"{sql(a)} [{m}]")

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()

    def report(self, total: float) -> dict[str, dict[str, float]]:
        seconds = dict(self.seconds)
        top = sum(v for k, v in seconds.items() if not k.startswith(" "))
        seconds["rest: the writer's own Python, event loop"] = total - top
        order = [
            "redis xreadgroup",
            "redis xautoclaim",
            "to_event (json decode, datetime)",
            "store_events (one transaction)",
            "  BEGIN [execute]",
            "  journal INSERT .. unnest .. RETURNING [fetch]",
            "  projections fold (Python)",
            "  projections write",
        ]
        keys = [k for k in order if k in seconds]
        keys += sorted((k for k in seconds if k.startswith("      ")), key=lambda k: -seconds[k])
        keys += [k for k in ("  ledger_streams progress [execute]", "  COMMIT [execute]") if k in seconds]
        keys += sorted((k for k in seconds if k not in keys), key=lambda k: -seconds[k])
        return {
            k: {"seconds": round(seconds[k], 3), "share": round(seconds[k] / total, 3), "calls": self.calls.get(k, 0)}
            for k in keys
        }


async def profiled_drain(svc: Services, url: str, batch: int, events: int) -> dict[str, Any]:
    breakdown = Breakdown()
    breakdown.install(svc)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    try:
        result = await drain(svc, url, 1, batch, events)
    finally:
        prof.disable()
        breakdown.uninstall()
    total = time.perf_counter() - t0
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(25)
    lines = [ln for ln in text.getvalue().splitlines() if ln.strip()]
    return {
        "note": "single writer under cProfile and timing wrappers: slower than the measured run",
        "events_per_s": result["events_per_s"],
        "breakdown": breakdown.report(total),
        "cprofile_tottime_top": lines[-26:],
    }


class WaitSampler:
    """What the writers' Postgres backends are doing, sampled from pg_stat_activity every
    `interval_s` by a thread of its own (so a busy event loop does not bias the samples)."""

    def __init__(self, url: str, interval_s: float = 0.01) -> None:
        self.url = url
        self.interval_s = interval_s
        self.counts: dict[str, int] = defaultdict(int)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._sample()), daemon=True)

    async def _sample(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            query = """SELECT state, wait_event_type, wait_event FROM pg_stat_activity
                       WHERE application_name = $1 AND pid <> pg_backend_pid()"""
            while not self._stop.is_set():
                for state, wtype, wevent in await conn.fetch(query, writer.APPLICATION):
                    if state == "active":
                        what = "running (CPU)" if wtype is None else f"active, waiting {wtype}:{wevent}"
                    elif state == "idle in transaction":
                        what = "in a transaction, waiting for the writer (ClientRead)"
                    elif state == "idle":
                        what = "between transactions, waiting for the writer"
                    else:
                        what = f"{state} {wtype}:{wevent}"
                    self.counts[what] += 1
                await asyncio.sleep(self.interval_s)
        finally:
            await conn.close()

    def __enter__(self) -> WaitSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def report(self) -> dict[str, float]:
        total = sum(self.counts.values()) or 1
        return {k: round(v / total, 3) for k, v in sorted(self.counts.items(), key=lambda kv: -kv[1])}


async def sampled_drain(svc: Services, url: str, writers: int, batch: int, events: int) -> dict[str, Any]:
    with WaitSampler(url) as sampler:
        result = await drain(svc, url, writers, batch, events)
    return {
        "writers": writers,
        "events_per_s": result["events_per_s"],
        "postgres_backends": sampler.report(),
        "samples": sum(sampler.counts.values()),
    }


# -- the run ----------------------------------------------------------------------------------
async def _phase(name: str, coro: Any, seconds: float) -> Any:
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(seconds):
            result = await coro
    except TimeoutError:
        raise SystemExit(f"phase {name!r} did not finish within {seconds:.0f} s") from None
    print(f"  {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    return result


async def run(args: argparse.Namespace, redis: embedded.EmbeddedRedis, pg: embedded.EmbeddedPostgres) -> dict:
    t = args.timeout
    build_url = await _fresh_database(pg, "bench_build")
    settings = Settings(redis_url=redis.url, database_url=build_url, pepper=b"bench", shards=16, key_prefix="bench")
    svc = await Services.open(settings)
    await svc.start()
    try:
        backlog = Backlog(svc, args.convenios, args.participants)
        await _phase("setup (convênios, participants, vehicles)", backlog.setup(args.concurrency), t)
        events = await _phase("backlog", backlog.build(args.events, args.concurrency), t)
        dump = await _phase("keep the streams aside", dump_streams(svc), t)
        assert sum(len(e) for e in dump.values()) == events
        rows = copy_rows(svc, dump)
        mix = type_mix(dump)
        print(f"backlog: {events} events from {backlog.sales} sales; {mix}", flush=True)

        meter = CpuMeter(redis, pg)
        runs: dict[str, list[dict]] = defaultdict(list)
        # interleaved, so that a noisy minute hurts every mode alike
        for rep in range(args.repeat):
            for k in args.writers:
                await restore_streams(svc, dump)
                url = await _fresh_database(pg, f"bench_r{rep}_w{k}")
                await _checkpoint(url)
                r = await _phase(
                    f"[{rep + 1}/{args.repeat}] drain, {k} writer(s)", drain(svc, url, k, args.batch, events, meter), t
                )
                split = ", ".join(f"{w['stored']} ({w['streams_with_events']} busy streams)" for w in r["per_writer"])
                print(f"    {r['events_per_s']:.0f} events/s; stored per writer: {split}; busy {r['busy']}", flush=True)
                runs[f"writers_{k}"].append(r)
                await _drop(pg, url)
            url = await _fresh_database(pg, f"bench_r{rep}_copy")
            await _checkpoint(url)
            c = await _phase(f"[{rep + 1}/{args.repeat}] COPY", copy_ceiling(url, rows, args.batch, meter), t)
            print(
                f"    {c['one_transaction']['rows_per_s']:.0f} rows/s in one transaction, "
                f"{c['batched']['rows_per_s']:.0f} in batches of {args.batch}; busy {c['one_transaction']['busy']}",
                flush=True,
            )
            runs["copy"].append(c)
            await _drop(pg, url)

        profile = None
        if args.profile:
            profile = {"postgres_backends": {}}
            for k in args.writers:
                await restore_streams(svc, dump)
                url = await _fresh_database(pg, f"bench_waits_w{k}")
                await _checkpoint(url)
                w = await _phase(
                    f"drain, {k} writer(s), Postgres wait sampling", sampled_drain(svc, url, k, args.batch, events), t
                )
                print(f"    {w['events_per_s']:.0f} events/s; Postgres backends: {w['postgres_backends']}", flush=True)
                profile["postgres_backends"][f"writers_{k}"] = w
                await _drop(pg, url)
            await restore_streams(svc, dump)
            url = await _fresh_database(pg, "bench_profile")
            await _checkpoint(url)
            profile.update(await _phase("profiled drain", profiled_drain(svc, url, args.batch, events), t))
            await _drop(pg, url)
        postgres = await _pg_settings(build_url)
        return {
            "events": events,
            "sales": backlog.sales,
            "event_mix": mix,
            "postgres": postgres,
            "runs": runs,
            "profile": profile,
        }
    finally:
        await svc.close()


async def _checkpoint(url: str) -> None:
    """Every timed phase starts right after a checkpoint (same full-page-write cost)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def _drop(pg: embedded.EmbeddedPostgres, url: str) -> None:
    conn = await asyncpg.connect(pg.url.rsplit("/", 1)[0] + "/postgres")
    try:
        await conn.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}"')
    finally:
        await conn.close()


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def _median_busy(samples: list[dict[str, float]]) -> dict[str, float]:
    """Cores kept busy (CPU seconds ÷ wall seconds) per process group, median over runs."""
    keys = samples[0].keys() if samples else ()
    return {k: round(statistics.median(b[k] for b in samples), 2) for k in keys}


def summarize(runs: dict[str, list[dict]], writers: list[int]) -> tuple[dict, dict]:
    results: dict[str, Any] = {}
    for k in writers:
        rs = runs[f"writers_{k}"]
        results[f"writers_{k}"] = {
            "writers": k,
            "events_per_s": _median([r["events_per_s"] for r in rs]),
            "seconds": round(statistics.median(r["seconds"] for r in rs), 3),
            "samples_events_per_s": [r["events_per_s"] for r in rs],
            "busy": _median_busy([r.get("busy", {}) for r in rs]),
            "runs": rs,
        }
    cs = runs["copy"]
    results["copy"] = {
        "table": cs[0]["table"],
        "rows_per_s": _median([c["one_transaction"]["rows_per_s"] for c in cs]),
        "batched_rows_per_s": _median([c["batched"]["rows_per_s"] for c in cs]),
        "batch": cs[0]["batched"]["batch"],
        "samples_rows_per_s": [c["one_transaction"]["rows_per_s"] for c in cs],
        "busy": _median_busy([c["one_transaction"].get("busy", {}) for c in cs]),
        "samples_batched_rows_per_s": [c["batched"]["rows_per_s"] for c in cs],
    }
    copy = results["copy"]["rows_per_s"]
    ratios = {}
    for k in writers:
        name = "ledger_vs_copy" if k == 1 else f"ledger_vs_copy_{k}_writers"
        ratios[name] = round(results[f"writers_{k}"]["events_per_s"] / copy, 3)
    ratios["copy_batched_vs_copy"] = round(results["copy"]["batched_rows_per_s"] / copy, 3)
    for k in writers:  # the same ratio within each repetition: how much the noise moves it
        results[f"writers_{k}"]["samples_vs_copy"] = [
            round(r["events_per_s"] / c["one_transaction"]["rows_per_s"], 3)
            for r, c in zip(runs[f"writers_{k}"], cs, strict=True)
        ]
    if 1 in writers:
        for k in writers:
            if k != 1:
                ratios[f"writers_{k}_vs_1"] = round(
                    results[f"writers_{k}"]["events_per_s"] / results["writers_1"]["events_per_s"], 3
                )
    return results, ratios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000, help="backlog size (about; counted exactly)")
    ap.add_argument("--writers", default="1,2", help="writer counts to measure, comma-separated")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each mode, interleaved; medians are reported")
    ap.add_argument("--batch", type=int, default=1000, help="the writer's batch (its default: 1000)")
    ap.add_argument("--convenios", type=int, default=16, help="16: one per shard, every stream busy")
    ap.add_argument("--participants", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=256, help="sales in flight while building the backlog")
    ap.add_argument("--appendfsync", default="everysec", choices=["always", "everysec", "off"])
    ap.add_argument("--timeout", type=float, default=900, help="seconds each phase may take")
    ap.add_argument("--profile", action="store_true", help="add a single-writer run under cProfile")
    ap.add_argument("--out", type=Path, default=None, help="the JSON report (default: results/<date>-ledger.json)")
    args = ap.parse_args()
    args.writers = sorted({int(w) for w in args.writers.split(",") if w})

    embedded.ensure_installed()
    root = Path(tempfile.mkdtemp(prefix="convenio-bench-ledger-", dir="/tmp"))
    root.chmod(0o755)  # as root, postgres runs as its own user and must reach it
    redis = pg = None
    try:
        redis = embedded.EmbeddedRedis(root / "redis", appendfsync=args.appendfsync).start()
        pg = embedded.EmbeddedPostgres(root / "postgres", durable=True).start()
        pinning = _pin_servers(redis, pg)
        print(f"Postgres durable (fsync on); Redis appendfsync={args.appendfsync}; pinning: {pinning}", flush=True)
        out = asyncio.run(run(args, redis, pg))
    finally:
        if pg is not None:
            pg.stop()
        if redis is not None:
            redis.stop()
        shutil.rmtree(root, ignore_errors=True)
        if pg is not None and pg.data_dir != root / "postgres":
            shutil.rmtree(pg.data_dir, ignore_errors=True)

    res, ratios = summarize(out["runs"], args.writers)
    first = res[f"writers_{args.writers[0]}"]
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "cpu": cpu_model(),
            "python": platform.python_version(),
            "postgres": out["postgres"],
            "redis_appendfsync": args.appendfsync,
        },
        "durability": "Postgres durable=True (fsync, synchronous_commit, full_page_writes on)",
        "pinning": pinning,
        "settings": {k: v for k, v in vars(args).items() if k != "profile"},
        "events": out["events"],
        "sales": out["sales"],
        "event_mix": out["event_mix"],
        "writers": first["writers"],
        "seconds": first["seconds"],
        "events_per_s": first["events_per_s"],
        "copy_rows_per_s": res["copy"]["rows_per_s"],
        "ratios": ratios,
        "results": res,
    }
    if out["profile"]:
        report["profile"] = out["profile"]
    RESULTS.mkdir(exist_ok=True)
    path = args.out or RESULTS / f"{datetime.date.today().isoformat()}-ledger.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n")
    print(f"medians of {args.repeat} run(s), {out['events']} events:")
    for k in args.writers:
        r = res[f"writers_{k}"]
        print(
            f"  {k} writer(s): {r['events_per_s']:>8.0f} events/s ({r['seconds']:.2f} s)"
            f"  samples {r['samples_events_per_s']}  cores busy {r['busy']}"
        )
    c = res["copy"]
    print(
        f"  COPY:        {c['rows_per_s']:>8.0f} rows/s in one transaction  samples {c['samples_rows_per_s']}"
        f"  cores busy {c['busy']}"
    )
    print(f"               {c['batched_rows_per_s']:>8.0f} rows/s in batches of {c['batch']}")
    if out["profile"]:
        print(f"profile (single writer, instrumented: {out['profile']['events_per_s']:.0f} events/s):")
        for key, v in out["profile"]["breakdown"].items():
            print(f"  {key:<55} {v['seconds']:>8.2f} s  {v['share']:>6.1%}  {v['calls']:>7} calls")
    print(f"ratios: {ratios}\nwritten {path}")


if __name__ == "__main__":
    main()
