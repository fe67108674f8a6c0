"""The month at scale: the MONTHLY rollover of a big convênio while holds go on, and
duplicata generation over a big journal.

    .venv/bin/python -m bench.month [--participants N] [--journal-rows N] [--seconds S] [--out PATH]

Targets: a rollover of 1,000,000 participants finishes within 60 s while holds go on, without
raising their p99 more than 2x; duplicata generation over 10,000,000 journal rows finishes
within 60 s, and its time grows with the period billed, not with the journal's size.

A private Redis (bench/stack.py: core 1, `appendfsync always`), a gateway worker (core 0) and a
private, durable Postgres (every core) start in a temporary directory. This process (the load
generator, the preparation, the batches' clients) runs on core 1.

Rollover (`rollover` in the output):
- The MONTHLY convênio ROLL (its rollover day is today) gets N participants in Redis through the
  fast loader (`scenarios.bulk_participants`, the API's own script, pipelined). The ledger
  writer stores the convênio and its first participant; the other N-1 rows are copied from that
  row inside Postgres (INSERT ... SELECT generate_series): the writer would take minutes to
  project a million registrations, and the loader's events are trimmed from ROLL's stream.
- A few hundred ROLL participants buy (hold + commit through the gateway), and the writer
  stores those sales, so the rollover has balances to put back.
- Holds on a small convênio of another shard, in one open loop at `--share` of their max rate
  (latency from each hold's due time, as bench/http_load.py; the stack's hold TTL is an hour, so
  no hold expires and the sweeper stays out of it): 2 s to settle, then `--seconds` alone, then
  during ledger.month.rollover.run (what `convenio rollover --date TODAY` runs; called with `now` at
  23:31 of today when it is earlier, as a rollover refuses to run before its 23:30 cutoff) in a
  process of its own on core 1, started and connected beforehand so its start-up stays out of
  the window, then `--seconds` alone again. The holds' events are acknowledged and
  trimmed by a stand-in for the writer (`Sink`), so the batch's barrier (jobs.require_ledger)
  passes while holds go on; ROLL's stream is left to the real writer. Reported: the job's own
  seconds (rollover.run's call), the holds' p50/p99 alone (before and after together) and
  during the job (holds due within it), their ratio, how busy Redis and each core were, the
  rollover's script calls over 1 ms (SLOWLOG), and a check of the balances (the buyers' are
  back at their limit, a random sample is at its limit, counts.changed = N).
- Then the real ledger writer stores the rollover's events (one per 250 participants: every
  participant's row updated, a ROLLOVER movement per changed balance), timed: what the ledger
  lags behind after a rollover.

Duplicatas (`duplicatas`):
- 202 convênios created through the registry (automatic billing, stored by the writer): BILLM
  (MONTHLY), BILLD (DAILY) and 200 others (MONTHLY).
- `movements` and `journal` filled inside Postgres (INSERT ... SELECT generate_series on two
  connections; no row crosses Python): one journal row per SALE or REVERSAL movement (the same
  protocol and instant; in the real ledger a sale is about three journal rows, so this is the
  harsh case for billing), in time order, over the 12 months before 2026-11-01, each convênio's
  rows interleaved with the others'. What falls before October is billed as earlier runs would
  have left it (a PAID duplicata per convênio and month, per day for BILLD, and an item per
  movement), so duplicata_items is as big as a year of billing makes it. The secondary indexes
  are dropped for the load and built again from their own definitions, then VACUUM ANALYZE.
- The small point, journal_rows/10 rows: a fifth of them in October (BILLM a quarter of those,
  BILLD a quarter, the others half). Timed: `duplicatas.generate` by hand for BILLD (bills
  2026-10-31) and for BILLM (bills October), each `--repeat` times (the best counts, the median
  is kept too; the timed run's duplicatas are deleted between), and the nightly run of
  2026-11-01 (every convênio's October).
- The large point, the other 9/10: every convênio before October, only the others in October
  (BILLM's and BILLD's billed periods stay as they were); timed again. The ratios compare the
  same billed period at both journal sizes. EXPLAIN (ANALYZE, BUFFERS) of the generation's
  grouping query (duplicatas._GROUPS) shows which index reads the period.

Writes --out (default bench/results/<date>-month.json); `bench/run` runs this as phase `m`.
Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import itertools
import json
import math
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bench import http_load, scenarios
from bench.http_load import Conn
from bench.redis_ceiling import cpu_seconds
from bench.stack import CLIENT_CORES, BenchStack, pin_here, stop, unpin_here
from gateway.auth import apikeys
from gateway.auth.permissions import Permission
from gateway.platform.clock import local_at, local_start, local_today
from gateway.platform.redis.keys import LEDGER_GROUP
from gateway.platform.services import Services
from gateway.registry import convenios
from gateway.registry.schemas import Billing, ConvenioCreate, Rollover
from ledger.month import duplicatas
from ledger.ops import embedded, migrate
from ledger.writer import writer

HOST = "127.0.0.1"
RESULTS = Path(__file__).with_name("results")
PER_PARTICIPANT = scenarios.BIG // 10**6  # the limit bulk_participants gives each participant
BILL_DATE = datetime.date(2026, 11, 1)  # the nightly run that bills October 2026 (and 31 October)
HISTORY = datetime.date(2025, 11, 1)  # the journal's first day
BILLED_MONTH = (datetime.date(2026, 10, 1), BILL_DATE)
OTHERS = 200  # convênios besides BILLM and BILLD
CLIENT = ",".join(map(str, sorted(CLIENT_CORES)))
SETTLE_S = 2.0  # the start of the hold loop (connections opening) is not counted
HOLD_TTL_S = 3600  # no hold of the scenario expires: the sweeper's work is not part of it


def core_seconds() -> dict[str, float]:
    """Busy seconds of each core so far (/proc/stat: user nice system irq softirq), whoever ran."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *v = line.split()
        if name.startswith("cpu") and name != "cpu":
            n = [int(x) for x in v]
            out[name] = (n[0] + n[1] + n[2] + n[5] + n[6]) / tick
    return out


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def pct(data: list[float], p: float) -> float | None:
    data = sorted(data)
    return round(data[min(len(data) - 1, int(len(data) * p))], 3) if data else None


def _sid(raw: bytes | str) -> tuple[int, int]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _name(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


# -- the ledger's side, for a benchmark ---------------------------------------------------------
class Sink:
    """Stands in for the ledger writer on every stream but `keep`: every 50 ms it marks what
    the gateway appended there (the holds' events, never stored) as read by the ledger's group
    (XGROUP SETID to the last entry, ENTRIESREAD its count, so XINFO's lag stays exact) and
    trims it, so a batch's barrier (jobs.require_ledger) passes while holds go on. It never
    reads an entry: its cost on the client's core is a few commands per cycle."""

    def __init__(self, svc: Services, keep: str) -> None:
        self.svc = svc
        self.streams = sorted(s for s in svc.keys.all_events() if s != keep)
        self.skipped = 0
        self._trimmed = 0.0

    async def once(self) -> int:
        infos = []
        for stream in self.streams:  # one XINFO each: a snapshot of its last id and count
            infos.append(await self.svc.redis.xinfo_stream(stream))
        pipe = self.svc.redis.pipeline(transaction=False)
        n = 0
        for stream, info in zip(self.streams, infos, strict=True):
            if info.get("length"):
                last, added = info["last-generated-id"], info["entries-added"]
                pipe.xgroup_setid(stream, LEDGER_GROUP, last, entries_read=added)
                n += info["length"]
        if n:
            await pipe.execute()
        if n and time.monotonic() - self._trimmed > 1.0:
            for stream in self.streams:
                await self.svc.run("ledger_trim", [stream], [LEDGER_GROUP])
            self._trimmed = time.monotonic()
        self.skipped += n
        return n

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.once()
            except (RedisTimeoutError, RedisConnectionError):
                pass  # this process's event loop was held up (a synchronous wait for a server): again
            await asyncio.sleep(0.05)
        await self.once()  # what came in up to the stop


async def stored(svc: Services, stream: str) -> bool:
    """Every entry of the stream is acknowledged by the ledger's group."""
    try:
        info = await svc.redis.xinfo_stream(stream)
    except ResponseError:
        return True
    groups = await svc.redis.xinfo_groups(stream)
    group = next((g for g in groups if _name(g["name"]) == LEDGER_GROUP), None)
    if group is None:
        return not info.get("length")
    return not group["pending"] and _sid(group["last-delivered-id"]) >= _sid(info["last-generated-id"])


async def store_stream(svc: Services, url: str, stream: str, timeout_s: float) -> tuple[int, float]:
    """The real ledger writer (ledger/writer/writer.py), on one stream only, until that stream is
    stored; returns (entries handled, seconds)."""
    w = writer.Writer(svc, url, "bench-month", rebalance_s=3600)
    w.streams = {stream: svc.keys.all_events()[stream]}
    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    handled = 0
    try:
        while True:
            handled += await w.round()
            if await stored(svc, stream):
                return handled, time.perf_counter() - started
            if time.monotonic() > deadline:
                raise TimeoutError(f"the writer did not store {stream} within {timeout_s:g} s")
    finally:
        await w.close()


async def skip_unstored(svc: Services, stream: str) -> None:
    """Drop a stream's entries as if the ledger had stored them: the group moves to the end
    (counting them as read, so XINFO's lag stays exact) and the stream is emptied."""
    info = await svc.redis.xinfo_stream(stream)
    await svc.redis.xgroup_setid(stream, LEDGER_GROUP, "$", entries_read=info["entries-added"])
    await svc.redis.xtrim(stream, maxlen=0)


async def caught_up(svc: Services, stream: str, timeout_s: float) -> None:
    """Wait (bounded) until the stream's entries are acknowledged (by the Sink)."""
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s * 10) + 1):
        if await stored(svc, stream) or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.1)


async def trim_all(svc: Services) -> None:
    """Empty every stream (their events are stored, or were never meant for the ledger)."""
    for stream in svc.keys.all_events():
        await svc.redis.xtrim(stream, maxlen=0)


# -- an open loop that runs until told to stop ------------------------------------------------------
Sample = tuple[float, float, int]  # (due, wall clock; latency ms from the due time; status)


@dataclasses.dataclass
class Paced:
    samples: list[Sample]
    started: float  # wall clock
    seconds: float
    late: int
    out_of_proofs: bool

    def between(self, lo: float, hi: float = math.inf) -> list[Sample]:
        return [x for x in self.samples if lo <= x[0] <= hi]


def summarize(chosen: list[Sample], by_second: bool = True) -> dict[str, Any]:
    lat = [ms for _, ms, _ in chosen]
    statuses: dict[str, int] = {}
    for _, _, st in chosen:
        statuses[str(st)] = statuses.get(str(st), 0) + 1
    dues = [d for d, _, _ in chosen]
    span = max(dues) - min(dues) if len(dues) > 1 else 0.0
    out = {
        "requests": len(chosen),
        "p50_ms": pct(lat, 0.5),
        "p99_ms": pct(lat, 0.99),
        "p999_ms": pct(lat, 0.999),
        "max_ms": round(max(lat), 3) if lat else None,
        "statuses": dict(sorted(statuses.items())),
    }
    if by_second:
        seconds: dict[int, list[float]] = {}
        first = min(dues) if dues else 0.0
        for due, ms, _ in chosen:
            seconds.setdefault(int(due - first), []).append(ms)
        out["seconds"] = round(span, 3)
        out["rate"] = round(len(chosen) / span, 1) if span else None
        out["p99_ms_by_second"] = [pct(seconds.get(i, []), 0.99) for i in range(int(span) + 1)] if chosen else []
    return out


async def paced(
    port: int, sales: scenarios.Sales, rate: float, limit_s: float, stop: asyncio.Event | None = None
) -> Paced:
    """Holds due every 1/rate s (as http_load.open_loop: latency from the due time, on up to 64
    connections) until `stop` is set, `limit_s` has passed or the minted proofs run out."""
    work = sales.hold()
    start = time.perf_counter()
    wall = time.time() - start
    stop_due = [math.inf]
    give_up = start + limit_s + 30  # a server that fell far behind: stop sending
    samples: list[tuple[float, float, int]] = []
    late = 0
    short = False
    counter = itertools.count()

    async def watch() -> None:
        if stop is not None:
            await stop.wait()
            stop_due[0] = time.perf_counter()

    async def worker() -> None:
        nonlocal late, short
        conn = await Conn.open(HOST, port)
        try:
            for n in counter:
                due = start + n / rate
                if due - start > limit_s or due > stop_due[0] or time.perf_counter() > give_up:
                    return
                delay = due - time.perf_counter()
                if delay > 0.001:
                    await asyncio.sleep(delay)
                elif delay < -0.001:
                    late += 1
                if due > stop_due[0]:
                    return
                if not sales.left:
                    short = True
                    return
                try:
                    status = await work(conn, n)
                except (OSError, asyncio.IncompleteReadError):
                    status = 599
                    conn.close()
                    conn = await Conn.open(HOST, port)
                samples.append((wall + due, (time.perf_counter() - due) * 1000, status))
        finally:
            conn.close()

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(worker() for _ in range(64)))
    watcher.cancel()
    return Paced(samples, wall + start, time.perf_counter() - start, late, short)


# -- the rollover ----------------------------------------------------------------------------------
def _apart(svc: Services, code: str, prefix: str) -> str:
    """A convênio code of another shard than `code`'s."""
    for i in range(100):
        other = f"{prefix}{i}"
        if svc.keys.shard_of(other) != svc.keys.shard_of(code):
            return other
    raise RuntimeError("every code landed on one shard")


async def load_rollover_population(svc: Services, conn: asyncpg.Connection, url: str, roll: str, n: int) -> float:
    """ROLL with n participants, in Redis and (as the writer leaves them) in Postgres."""
    k = svc.keys
    stream = k.events(k.shard_of(roll))
    today = local_today(datetime.datetime.now(datetime.UTC))
    body = ConvenioCreate(
        code=roll,
        name="BENCH ROLLOVER",
        total_limit=max(scenarios.BIG, n * PER_PARTICIPANT),
        rollover=Rollover(policy="MONTHLY", day=today.day),
    )
    await convenios.save_convenio(svc, roll, body)
    codes = [f"R{i:07d}" for i in range(n)]
    await scenarios.bulk_participants(svc, roll, codes[:1])
    await store_stream(svc, url, stream, 60)
    template = await conn.fetchrow(
        "SELECT * FROM participants WHERE convenio = $1 AND participant = $2", roll, codes[0]
    )
    assert template is not None, "the writer did not store the template participant"
    started = time.perf_counter()
    for start in range(1, n, 20_000):
        await scenarios.bulk_participants(svc, roll, codes[start : start + 20_000])
        await skip_unstored(svc, stream)  # nothing else writes ROLL's stream meanwhile
        if start > 1 and (start - 1) % 200_000 == 0:
            say(f"  redis: {start:,} participants in {time.perf_counter() - started:.0f} s")
    redis_s = time.perf_counter() - started
    # the other n-1 rows: the template's columns (as the writer projected its participant.created)
    columns = list(template.keys())
    chosen = ", ".join("'R' || lpad(g::text, 7, '0')" if c == "participant" else f't."{c}"' for c in columns)
    names = ", ".join(f'"{c}"' for c in columns)
    await conn.execute(
        f"""INSERT INTO participants ({names})
            SELECT {chosen} FROM participants t, generate_series(1, $3::int - 1) AS g
            WHERE t.convenio = $1 AND t.participant = $2""",  # noqa: S608 - the catalog's own column names
        roll,
        codes[0],
        n,
    )
    allocated = int(await svc.redis.hget(k.convenio(roll), "allocated") or 0)
    await conn.execute("UPDATE convenios SET allocated = $2 WHERE code = $1", roll, allocated)
    await conn.execute("VACUUM ANALYZE participants")
    return redis_s


async def slowest_batches(svc: Services) -> dict[str, Any]:
    """balance_batch calls (an EVALSHA with hundreds of keys) in SLOWLOG, which keeps those over 1 ms."""
    entries = await svc.redis.slowlog_get(10_000)
    durations = []
    for e in entries:
        cmd = e.get("command") or b""
        cmd = cmd if isinstance(cmd, bytes) else str(cmd).encode()
        words = cmd.split()
        if len(words) > 2 and words[0].upper() == b"EVALSHA" and words[2].isdigit() and int(words[2]) > 50:
            durations.append(e["duration"] / 1000)
    return {
        "over_1ms": len(durations),
        "longest_ms": round(max(durations), 2) if durations else None,
        "median_of_those_ms": round(statistics.median(durations), 2) if durations else None,
    }


async def latency_events(svc: Services) -> dict[str, Any]:
    """Redis's latency monitor (events over 5 ms since the reset): which of its steps stalled,
    e.g. `command` (a long script) or `aof-fsync-always` (the disk)."""
    out = {}
    for event, _, latest, longest in await svc.redis.execute_command("LATENCY", "LATEST"):
        out[_name(event)] = {"latest_ms": latest, "longest_ms": longest}
    return out


async def start_worker(
    stack: BenchStack, url: str, date: datetime.date, worker: dict[str, Any]
) -> asyncio.subprocess.Process:
    """The rollover's process (`python -m bench.month --rollover-worker DATE`, by default on the
    client's core), started and connected beforehand: its start-up (imports, connections) stays
    out of the measured window. It runs ledger.month.rollover.run, as `convenio rollover --date DATE`
    does, when it reads a line, and prints the run as `convenio rollover --json` does."""
    cmd = ["taskset", "-c", worker["cores"]]
    if worker["nice"]:
        cmd += ["nice", "-n", str(worker["nice"])]
    cmd += [sys.executable, "-m", "bench.month", "--rollover-worker", date.isoformat()]
    if worker["chunk"]:
        cmd += ["--rollover-chunk", str(worker["chunk"])]
    pipe = asyncio.subprocess.PIPE
    job = await asyncio.create_subprocess_exec(
        *cmd, env=stack.env(DATABASE_URL=url), stdin=pipe, stdout=pipe, stderr=pipe
    )
    assert job.stdout is not None
    ready = await asyncio.wait_for(job.stdout.readline(), 60)
    if ready.strip() != b"ready":
        job.kill()
        _, err = await job.communicate()
        raise RuntimeError(f"the rollover worker did not start: {err.decode()[-800:]}")
    return job


async def _worker(date: str, chunk: int | None) -> None:
    from gateway.platform.clock import parse_date
    from gateway.platform.config import Settings
    from ledger.month import balance_batch, jobs, rollover
    from ledger.month import calendar as local_calendar

    if chunk:
        balance_batch.CHUNK = chunk  # what apply() reads when its caller names no chunk
    # where the job's time goes: its steps, timed from outside (the module attributes it calls)
    steps: dict[str, float] = {}

    def timed(module: Any, name: str) -> None:
        fn = getattr(module, name)

        async def wrapper(*a: Any, **kw: Any) -> Any:
            started = time.perf_counter()
            try:
                return await fn(*a, **kw)
            finally:
                steps[name] = round(steps.get(name, 0.0) + time.perf_counter() - started, 3)

        setattr(module, name, wrapper)

    for module, name in (
        (jobs, "require_ledger"),
        (rollover, "due"),
        (rollover, "participants"),  # the pools' read, by whichever name the module gives it
        (rollover, "_pools"),
        (balance_batch, "already_done"),
        (balance_batch, "apply"),
    ):
        if hasattr(module, name):
            timed(module, name)
    settings = Settings.from_env()
    svc = await Services.open(settings)
    await svc.start()
    conn = await asyncpg.connect(settings.database_url)
    try:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        # the date's run as the scheduler starts it, at 23:30 (a rollover refuses to run before
        # its cutoff): `now` is then, whatever the clock says; the scripts stamp real time
        day = parse_date(date)
        cutoff = local_at(day, getattr(local_calendar, "ROLLOVER_AT", datetime.time(23, 30)))
        now = max(datetime.datetime.now(datetime.UTC), cutoff + datetime.timedelta(minutes=1))
        cpu, started = time.process_time(), time.time()
        run = await rollover.run(svc, conn, day, now=now, ledger_wait_s=30)
        reply = {
            "run": run.as_dict(),
            "started": started,
            "ended": time.time(),
            "cpu_s": round(time.process_time() - cpu, 2),
            "steps_seconds": steps,
        }
        print(json.dumps(reply, default=str), flush=True)
    finally:
        await conn.close()
        await svc.close()


async def rollover_phase(stack: BenchStack, svc: Services, url: str, args: argparse.Namespace) -> dict[str, Any]:
    n, seconds, share = args.participants, args.seconds, args.share
    budget_s = min(120.0, max(15.0, n / 10_000))  # the longest the holds go on during the rollover
    worker = {"cores": args.rollover_cores, "nice": args.rollover_nice, "chunk": args.rollover_chunk}
    rng = random.Random(args.seed)
    k = svc.keys
    roll = "ROLL"
    hold = _apart(svc, roll, "HOLD")
    roll_stream = k.events(k.shard_of(roll))
    out: dict[str, Any] = {"participants": n, "convenio": roll, "hold_convenio": hold, "steps_seconds": {}}
    clock = [time.perf_counter(), ""]

    def step(name: str) -> None:  # the wall seconds of each step, for the run's length at other sizes
        now = time.perf_counter()
        if clock[1]:
            out["steps_seconds"][clock[1]] = round(now - clock[0], 1)
        clock[:] = [now, name]

    stopping = asyncio.Event()
    sink = Sink(svc, keep=roll_stream)
    sink_task = asyncio.create_task(sink.run(stopping))
    conn = await asyncpg.connect(url)
    proc = job = None
    try:
        step("load")
        say(f"rollover: loading {n:,} participants (Redis: bulk loader; Postgres: copied from a stored row)")
        started = time.perf_counter()
        out["redis_load_seconds"] = round(await load_rollover_population(svc, conn, url, roll, n), 1)
        out["load_seconds"] = round(time.perf_counter() - started, 1)
        await scenarios._convenio(svc, hold, shared=False)
        # a password check's events go to the customer's shard: none of these on ROLL's, whose
        # stream only the real writer stores (the rollover waits for it)
        hold_codes = [c for c in (f"H{i:05d}" for i in range(1100)) if k.shard_of(c) != k.shard_of(roll)][:1000]
        await scenarios.bulk_participants(svc, hold, hold_codes)
        token, _ = await apikeys.create(svc, frozenset(Permission), name="bench-month")
        proc, port = stack.serve_gateway()

        step("buyers")
        say("rollover: a few hundred buyers, so balances differ from their limits; the writer stores the sales")
        buyers_pop = scenarios.Population(token, "", [], [], [])
        chosen = sorted({f"R{rng.randrange(n):07d}" for _ in range(min(300, n))})
        minted = await scenarios.mint(svc, roll, chosen, 2 * len(chosen), rng)
        buyers = sorted({p for p, _ in minted})
        sales = scenarios.Sales(buyers_pop, roll, minted, rng)
        r = await http_load.closed(HOST, port, sales.hold_commit(), len(minted), 16, 60, 2)
        assert set(r.statuses) == {200}, f"buyers' sales failed: {r.statuses}"
        await store_stream(svc, url, roll_stream, 120)
        differ = await conn.fetchval(
            'SELECT count(*) FROM participants WHERE convenio = $1 AND balance <> "limit"', roll
        )
        assert differ == len(buyers), f"{differ} participants in Postgres differ from their limit, not {len(buyers)}"
        out["buyers"] = len(buyers)

        step("hold_max")
        say("rollover: holds' max rate on a small convênio of another shard")
        pop = scenarios.Population(token, "", hold_codes, [], [])
        units = 40_000
        sales = scenarios.Sales(pop, hold, await scenarios.mint(svc, hold, hold_codes, units + 200, rng), rng)
        await http_load.closed(HOST, port, sales.hold(), 200, 16, 10)  # warm-up
        peak = await http_load.closed(HOST, port, sales.hold(), units, 32, seconds)
        rate = peak.rate * share
        out["hold_max"] = peak.summary()
        out["hold_rate"] = round(rate, 1)
        # one open loop to the end: a few seconds to settle, then `seconds` before the rollover,
        # the rollover, `seconds` after it (no hold expires meanwhile: the stack's hold TTL is long)
        settle = SETTLE_S
        limit = settle + seconds + budget_s + 1 + seconds + 5
        need = int(rate * limit) + 100
        step("mint")
        say(f"  max {peak.rate:.0f}/s; open loop at {rate:.0f}/s; minting {need:,} proofs")
        sales = scenarios.Sales(pop, hold, await scenarios.mint(svc, hold, hold_codes, need, rng), rng)
        for stream in sorted({k.events(k.shard_of(c)) for c in (hold, *hold_codes)}):
            await caught_up(svc, stream, 60)  # the minting's events acknowledged

        today = local_today(datetime.datetime.now(datetime.UTC))
        job = await start_worker(stack, url, today, worker)
        step("holds")
        say(f"rollover: holds at {rate:.0f}/s: {settle:g} s to settle, {seconds:g} s alone, during the rollover, ...")
        stop_load = asyncio.Event()
        load = asyncio.create_task(paced(port, sales, rate, limit, stop_load))
        await asyncio.sleep(settle + seconds)
        await svc.redis.config_set("slowlog-log-slower-than", 1000)
        await svc.redis.config_set("slowlog-max-len", 10_000)
        await svc.redis.slowlog_reset()
        await svc.redis.config_set("latency-monitor-threshold", 5)
        await svc.redis.execute_command("LATENCY", "RESET")
        assert stack.redis.proc is not None
        redis_cpu, cores_before = cpu_seconds(stack.redis.proc.pid), core_seconds()
        launched = time.time()
        try:
            stdout, stderr = await asyncio.wait_for(job.communicate(b"go\n"), max(600.0, budget_s * 5))
        except TimeoutError:
            job.kill()
            await job.wait()
            stop_load.set()
            await load
            raise
        finished = time.time()
        redis_busy = (cpu_seconds(stack.redis.proc.pid) - redis_cpu) / (finished - launched)
        cores_busy = {c: round((v - cores_before[c]) / (finished - launched), 2) for c, v in core_seconds().items()}
        out["redis_batch_calls"] = await slowest_batches(svc)
        say(f"  ... and {seconds:g} s alone after it")
        await asyncio.sleep(1.0 + seconds)
        stop_load.set()
        holds = await load
        if job.returncode != 0:
            raise RuntimeError(f"the rollover failed ({job.returncode}): {stderr.decode()[-800:]}")
        reply = json.loads(stdout)
        run = reply["run"]
        t0, t1 = reply["started"], reply["ended"]
        out["job"] = run
        out["rollover_seconds"] = round(t1 - t0, 2)
        out["participants_per_s"] = round(n / (t1 - t0))
        out["worker"] = worker | {"cpu_s": reply["cpu_s"], "wall_s_with_handshake": round(finished - launched, 2)}
        out["job_steps_seconds"] = reply["steps_seconds"]
        out["redis_latency_events"] = await latency_events(svc)
        out["busy_during_rollover"] = {"redis": round(redis_busy, 2), **cores_busy}
        before = holds.between(holds.started + settle, launched)
        after = holds.between(t1 + 1.0, t1 + 1.0 + seconds)
        out["holds_before"] = summarize(before)
        out["holds_during"] = summarize(holds.between(t0, t1))
        out["holds_during"]["load_stopped_early"] = holds.out_of_proofs or holds.seconds > limit - 1
        out["holds_after"] = summarize(after)
        out["holds_all"] = summarize(holds.samples) | {"started_late": holds.late, "settle_s": settle}
        # alone: before and after the rollover together (one noisy second weighs less)
        out["holds_alone"] = summarize(before + after, by_second=False)
        p99a, p99d = out["holds_alone"]["p99_ms"], out["holds_during"]["p99_ms"]
        out["hold_p99_vs_alone"] = round(p99d / p99a, 2) if p99a and p99d else None
        p50a, p50d = out["holds_alone"]["p50_ms"], out["holds_during"]["p50_ms"]
        out["hold_p50_vs_alone"] = round(p50d / p50a, 2) if p50a and p50d else None
        say(
            f"  rollover {out['rollover_seconds']} s ({out['participants_per_s']:,}/s); busy "
            f"{out['busy_during_rollover']}; holds p50 / p99 ms: before {out['holds_before']['p50_ms']} / "
            f"{out['holds_before']['p99_ms']}, during {p50d} / {p99d}, after {out['holds_after']['p50_ms']} / "
            f"{out['holds_after']['p99_ms']}; p99 during / alone {out['hold_p99_vs_alone']}"
        )

        # the balances: every buyer is back at the limit, and so is a random sample
        sample = sorted(set(buyers) | {f"R{rng.randrange(n):07d}" for _ in range(min(1000, n))})
        pipe = svc.redis.pipeline(transaction=False)
        for code in sample:
            pipe.hmget(k.participant(roll, code), "balance", "limit")
        wrong = [c for c, (bal, lim) in zip(sample, await pipe.execute(), strict=True) if bal != lim]
        counts = run["counts"]
        out["check"] = {
            "sampled": len(sample),
            "not_at_limit": len(wrong),
            "changed": counts.get("changed"),
            "missing": counts.get("missing"),
            "ok": not wrong and counts.get("changed") == n and counts.get("missing") == 0,
        }
        assert out["check"]["ok"], f"rollover check failed: {out['check']} {wrong[:5]}"

        step("ledger_store")
        say("rollover: the ledger writer stores the rollover's events (timed)")
        entries, store_s = await store_stream(svc, url, roll_stream, max(600.0, n / 1000))
        left = await conn.fetchval('SELECT count(*) FROM participants WHERE convenio = $1 AND balance <> "limit"', roll)
        moved = await conn.fetchval(
            "SELECT count(*) FROM movements WHERE convenio = $1 AND kind = 'ROLLOVER' AND batch_key = $2",
            roll,
            today.isoformat(),
        )
        out["ledger_store"] = {
            "events": entries,
            "seconds": round(store_s, 2),
            "participants_per_s": round(n / store_s),
            "postgres_not_at_limit": left,
            "rollover_movements": moved,
            "ok": left == 0 and moved == len(buyers),
        }
        say(f"  stored {entries} events in {store_s:.1f} s; Postgres rows not at their limit: {left}")
        step("")
    finally:
        if job is not None and job.returncode is None:  # a failure before the rollover ran
            job.kill()
            await job.wait()
        if proc is not None:
            stop(proc)
        stopping.set()
        await sink_task
        await conn.close()
    return out


# -- duplicatas --------------------------------------------------------------------------------------
_SECONDARY = """SELECT indexname, indexdef FROM pg_indexes
                WHERE tablename = ANY($1::text[]) AND indexname NOT IN
                      (SELECT conname FROM pg_constraint WHERE conrelid = ANY($1::text[]::regclass[]))
                ORDER BY indexname"""

_FILL_MOVEMENTS = """
INSERT INTO movements (protocol, convenio, participant, kind, amount, balance_after, pool, empenho_id,
                       terminal, store, sale, coupon, at)
SELECT 'P' || lpad(g::text, 25, '0'),
       CASE $3::text  -- who sells: the other convênios only, or with BILLM and BILLD among them
         WHEN 'others' THEN 'J' || lpad((g % $6::int)::text, 3, '0')
         WHEN 'october' THEN CASE g % 4 WHEN 0 THEN 'BILLM' WHEN 1 THEN 'BILLD'
                                        ELSE 'J' || lpad(((g / 4) % $6::int)::text, 3, '0') END
         ELSE CASE g % ($6::int + 2) WHEN 0 THEN 'BILLM' WHEN 1 THEN 'BILLD'
                                     ELSE 'J' || lpad((g % ($6::int + 2) - 2)::text, 3, '0') END
       END,
       'X' || lpad((g % 50000)::text, 6, '0'),
       CASE WHEN g % 20 = 0 THEN 'REVERSAL' ELSE 'SALE' END,
       CASE WHEN g % 20 = 0 THEN 1 ELSE -1 END * (100 + g % 9900),
       1000000 - g % 900000,
       'P',
       'E3-' || lpad(g::text, 26, '0'),
       'PDV' || lpad((g % 40)::text, 2, '0'),
       'LOJA' || lpad((g % 12)::text, 2, '0'),
       'V' || g,
       CASE WHEN g % 20 = 0 THEN NULL ELSE 'CUPOM-' || g END,
       $4::timestamptz + ((g - $7::bigint)::float8 * $5::float8 / $8::bigint) * interval '1 second'
FROM generate_series($1::bigint, $2::bigint) AS g
"""

_FILL_JOURNAL = """
INSERT INTO journal (protocol, shard, stream_id, type, at, data)
SELECT m.protocol, s.shard, (extract(epoch FROM m.at) * 1000)::bigint || '-' || (m.seq % 1000),
       CASE m.kind WHEN 'SALE' THEN 'empenho.committed' ELSE 'empenho.reversed' END, m.at,
       jsonb_build_object('id', m.empenho_id, 'convenio', m.convenio, 'participant', m.participant,
                          'amount', abs(m.amount), 'balance', m.balance_after, 'reserved', 0, 'pool', m.pool,
                          'coupon', m.coupon, 'terminal', m.terminal, 'store', m.store, 'sale', m.sale)
FROM movements m JOIN unnest($3::text[], $4::text[]) AS s (convenio, shard) ON s.convenio = m.convenio
WHERE m.protocol BETWEEN $1 AND $2
"""

# What earlier runs billed (every movement before the billed period), as generation leaves it:
# one duplicata per convênio and month (per day for the DAILY one), PAID, and an item per movement.
_PERIOD = """CASE WHEN m.convenio = $3 THEN 'day' ELSE 'month' END"""
_LOCAL = "(m.at AT TIME ZONE 'America/Sao_Paulo')"
_BILLED_ID = f"'D' || m.convenio || '-' || to_char(date_trunc({_PERIOD}, {_LOCAL}), 'YYYYMMDD')"

_HISTORY_DUPLICATAS = f"""
INSERT INTO duplicatas (id, convenio, period, period_start, period_end, amount, items, payment_method,
                        issued_at, due_date, status, paid_at, paid_by, restore)
SELECT h.id, h.convenio, h.period, h.start, h.stop, h.amount, h.n, 'BOLETO',
       h.stop::timestamp AT TIME ZONE 'America/Sao_Paulo' + interval '2 hours', h.stop + 10, 'PAID',
       (h.stop + 5)::timestamp AT TIME ZONE 'America/Sao_Paulo', 'bench', 'NONE'
FROM (SELECT {_BILLED_ID} AS id, m.convenio,
             CASE WHEN m.convenio = $3 THEN 'DAILY' ELSE 'MONTHLY' END AS period,
             date_trunc({_PERIOD}, {_LOCAL})::date AS start,
             (date_trunc({_PERIOD}, {_LOCAL}) + CASE WHEN m.convenio = $3 THEN interval '1 day'
                                                    ELSE interval '1 month' END)::date AS stop,
             sum(-m.amount)::bigint AS amount, count(*)::int AS n
      FROM movements m WHERE m.protocol BETWEEN $1 AND $2 AND m.at < $4
      GROUP BY 1, 2, 3, 4, 5) AS h
ON CONFLICT (id) DO UPDATE SET amount = duplicatas.amount + EXCLUDED.amount, items = duplicatas.items + EXCLUDED.items
"""  # noqa: S608 - this module's constants; values are parameters

_HISTORY_ITEMS = f"""
INSERT INTO duplicata_items (movement, duplicata, participant, pool, empenho_id, kind, amount, at)
SELECT m.protocol, {_BILLED_ID}, m.participant, m.pool, m.empenho_id, m.kind, -m.amount, m.at
FROM movements m WHERE m.protocol BETWEEN $1 AND $2 AND m.at < $4
"""  # noqa: S608 - this module's constants; values are parameters


@dataclasses.dataclass
class Journal:
    """Fills movements and journal on two connections at once (Postgres has every core)."""

    conns: list[asyncpg.Connection]
    shards: dict[str, str]
    rows: int = 0
    steps: dict[str, float] = dataclasses.field(default_factory=dict)  # seconds per step of the load

    async def run(self, step: str, sql: str, *args: Any, conn: asyncpg.Connection | None = None) -> None:
        started = time.perf_counter()
        await (conn or self.conns[0]).execute(sql, *args)
        self.steps[step] = round(self.steps.get(step, 0.0) + time.perf_counter() - started, 2)

    async def fill(self, count: int, mix: str, lo: datetime.date, hi: datetime.date) -> None:
        """count movements (and their journal rows) spread evenly over the local days [lo, hi),
        in time order, their convênios taken in turn: 'others' (J000...), 'all' (BILLM, BILLD and
        the others) or 'october' (BILLM a quarter, BILLD a quarter, the others half). What falls
        before the billed period is billed, as earlier runs would have."""
        if count <= 0:
            return
        first, last = self.rows + 1, self.rows + count
        start, end = local_start(lo), local_start(hi)
        span = (end - start).total_seconds() - 0.001
        codes = sorted(self.shards)
        shards = [self.shards[c] for c in codes]
        billed = local_start(BILLED_MONTH[0])

        async def part(conn: asyncpg.Connection, a: int, b: int) -> None:
            await conn.execute(_FILL_MOVEMENTS, a, b, mix, start, span, OTHERS, first, count)
            await conn.execute(_FILL_JOURNAL, f"P{a:025d}", f"P{b:025d}", codes, shards)
            # the items' foreign keys hold by construction: no per-row trigger for the load
            await conn.execute("SET session_replication_role = replica")
            await conn.execute(_HISTORY_ITEMS, f"P{a:025d}", f"P{b:025d}", "BILLD", billed)
            await conn.execute("SET session_replication_role = origin")

        started = time.perf_counter()
        cut = first + count // 2
        await asyncio.gather(part(self.conns[0], first, cut - 1), part(self.conns[1], cut, last))
        self.steps["rows"] = round(self.steps.get("rows", 0.0) + time.perf_counter() - started, 2)
        await self.run("billed_duplicatas", _HISTORY_DUPLICATAS, f"P{first:025d}", f"P{last:025d}", "BILLD", billed)
        self.rows = last


async def load(conn: asyncpg.Connection, journal: Journal, plan: list[tuple[int, str, Any, Any]]) -> dict[str, float]:
    """Fill per plan with the secondary indexes dropped, build them again, VACUUM ANALYZE;
    returns the seconds of each step."""
    started = time.perf_counter()
    journal.steps = {}
    indexes = await conn.fetch(_SECONDARY, ["movements", "journal", "duplicata_items"])
    for ix in indexes:
        await conn.execute(f'DROP INDEX "{ix["indexname"]}"')
    for count, mix, lo, hi in plan:
        await journal.fill(count, mix, lo, hi)
    await conn.execute("SET maintenance_work_mem = '512MB'")
    await conn.execute("SET max_parallel_maintenance_workers = 2")
    for ix in indexes:
        await journal.run("indexes", ix["indexdef"])
    for table in ("movements", "journal", "duplicatas", "duplicata_items"):
        await journal.run("vacuum_analyze", f"VACUUM ANALYZE {table}")
    await journal.run("checkpoint", "CHECKPOINT")
    return journal.steps | {"total": round(time.perf_counter() - started, 1)}


async def explain(conn: asyncpg.Connection, convenio: str, lo: datetime.date, hi: datetime.date) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of the generation's grouping query (duplicatas._GROUPS) for
    one convênio's period: which index reads it."""
    rows = await conn.fetch(
        "EXPLAIN (ANALYZE, BUFFERS) " + duplicatas._GROUPS, convenio, local_start(lo), local_start(hi), False
    )
    plan = [r[0] for r in rows]
    # the node that reads movements: an index (by name) or, if ever, a sequential scan
    scans = [line.strip() for line in plan if re.search(r"Scan (using \S+ )?on movements(_\w+)?\b", line)]
    index = [line for line in scans if "Index" in line]
    return {"movements_scan": (index or scans or [None])[0], "plan": plan}


async def _clear(conn: asyncpg.Connection) -> None:
    """Undo the timed runs: their duplicatas bill the billed period (the history stays)."""
    billed = "SELECT id FROM duplicatas WHERE period_start >= $1"
    await conn.execute(f"DELETE FROM duplicata_items WHERE duplicata IN ({billed})", BILLED_MONTH[0])  # noqa: S608
    await conn.execute("DELETE FROM duplicatas WHERE period_start >= $1", BILLED_MONTH[0])
    await conn.execute("DELETE FROM job_runs WHERE job = 'duplicatas'")
    await conn.execute("VACUUM ANALYZE duplicata_items")
    await conn.execute("VACUUM ANALYZE duplicatas")


async def timed_generate(
    svc: Services, conn: asyncpg.Connection, convenio: str | None, repeat: int, timeout_s: float
) -> dict[str, Any]:
    """duplicatas.generate for BILL_DATE (by hand for one convênio, or the nightly run)."""
    now = local_at(BILL_DATE, datetime.time(2, 0))
    samples, counts, items = [], {}, 0
    for _ in range(repeat):
        await _clear(conn)
        started = time.perf_counter()
        run = await asyncio.wait_for(duplicatas.generate(svc, conn, BILL_DATE, convenio=convenio, now=now), timeout_s)
        samples.append(time.perf_counter() - started)
        counts = run.counts
        items = await conn.fetchval(
            "SELECT coalesce(sum(items), 0) FROM duplicatas WHERE period_start >= $1", BILLED_MONTH[0]
        )
    await _clear(conn)
    return {
        "seconds": round(min(samples), 3),  # the best of the runs: on a shared machine noise only adds
        "median_seconds": round(statistics.median(samples), 3),
        "samples": [round(s, 3) for s in samples],
        "items_billed": items,
        "counts": counts,
        "us_per_item": round(min(samples) / max(items, 1) * 1e6, 2),
    }


async def duplicatas_phase(svc: Services, url: str, journal_rows: int, repeat: int) -> dict[str, Any]:
    base = max(journal_rows // 10, 2000)  # the small point: a tenth of the journal
    base_october = base // 5  # of which October: BILLM a quarter, BILLD a quarter, the others half
    extra = max(journal_rows - base, 0)
    extra_october = extra // 12  # the others' October only: BILLM's and BILLD's stays as it was
    conn = await asyncpg.connect(url, command_timeout=3600)
    other = await asyncpg.connect(url, command_timeout=3600)
    out: dict[str, Any] = {"bill_date": BILL_DATE.isoformat(), "billm_october_rows": base_october // 4}
    try:
        # every WAL segment the load writes would otherwise trigger checkpoints every 1 GB
        await conn.execute("ALTER SYSTEM SET max_wal_size = '8GB'")
        await conn.execute("SELECT pg_reload_conf()")
        say(f"duplicatas: {OTHERS + 2} convênios through the registry, stored by the writer")
        codes = ["BILLM", "BILLD", *(f"J{i:03d}" for i in range(OTHERS))]
        for code in codes:
            billing = Billing(automatic=True, period="DAILY" if code == "BILLD" else "MONTHLY")
            body = ConvenioCreate(code=code, name=f"BENCH {code}", total_limit=scenarios.BIG, billing=billing)
            await convenios.save_convenio(svc, code, body)
        await writer.drain(svc, url)
        journal = Journal([conn, other], {c: str(svc.keys.shard_of(c)) for c in codes})
        october = BILLED_MONTH
        small_plan = [(base - base_october, "all", HISTORY, october[0]), (base_october, "october", *october)]
        big_plan = [(extra - extra_october, "all", HISTORY, october[0]), (extra_october, "others", *october)]
        await trim_all(svc)  # the registry's events are stored: the batch's barrier has nothing to wait for
        for label, plan in (("small", small_plan), ("large", big_plan)):
            say(f"duplicatas: loading {sum(p[0] for p in plan):,} movements and journal rows")
            steps = await load(conn, journal, plan)
            seconds = steps["total"]
            size = await conn.fetchval("SELECT pg_total_relation_size('movements') + pg_total_relation_size('journal')")
            point: dict[str, Any] = {
                "journal_rows": await conn.fetchval("SELECT count(*) FROM journal"),
                "movements": await conn.fetchval("SELECT count(*) FROM movements"),
                "load_seconds": seconds,
                "load_steps_seconds": steps,
                "journal_and_movements_bytes": size,
                "database_bytes": await conn.fetchval("SELECT pg_database_size(current_database())"),
            }
            say(f"  {point['journal_rows']:,} journal rows loaded in {seconds:.0f} s ({size / 2**30:.1f} GiB)")
            point["explain_month"] = await explain(conn, "BILLM", *october)
            say(f"  plan: {point['explain_month']['movements_scan']}")
            for name, convenio in (("day", "BILLD"), ("month", "BILLM"), ("nightly", None)):
                point[name] = await timed_generate(svc, conn, convenio, 1 if name == "nightly" else repeat, 900)
                p = point[name]
                say(f"  {name:<8} {p['seconds']:.3f} s  ({p['items_billed']:,} movements billed; {p['samples']})")
            out[label] = point
    finally:
        await other.close()
        await conn.close()
    small, large = out["small"], out["large"]
    out["ratios"] = {
        "month_seconds_large_vs_small_journal": round(large["month"]["seconds"] / small["month"]["seconds"], 2),
        "day_seconds_large_vs_small_journal": round(large["day"]["seconds"] / small["day"]["seconds"], 2),
        "month_vs_day_seconds": round(large["month"]["seconds"] / large["day"]["seconds"], 2),
        "month_vs_day_items": round(large["month"]["items_billed"] / max(large["day"]["items_billed"], 1), 2),
    }
    return out


# -- the whole scenario ---------------------------------------------------------------------------------
def ratios(out: dict[str, Any]) -> dict[str, float | None]:
    """The month's figures for the report's top-level ratios."""
    r: dict[str, float | None] = {}
    roll = out.get("rollover")
    if roll:
        r["rollover_seconds"] = roll["rollover_seconds"]
        r["rollover_hold_p99_vs_alone"] = roll["hold_p99_vs_alone"]
    dup = out.get("duplicatas")
    if dup:
        r["duplicatas_seconds_day"] = dup["large"]["day"]["seconds"]
        r["duplicatas_seconds_month"] = dup["large"]["month"]["seconds"]
        r["duplicatas_seconds_nightly"] = dup["large"]["nightly"]["seconds"]
        r["duplicatas_month_seconds_journal_10m_vs_1m"] = dup["ratios"]["month_seconds_large_vs_small_journal"]
        r["duplicatas_day_seconds_journal_10m_vs_1m"] = dup["ratios"]["day_seconds_large_vs_small_journal"]
    return r


async def _run(stack: BenchStack, pg_url: str, args: argparse.Namespace) -> dict[str, Any]:
    # proofs for the whole phase are minted beforehand: they must outlive it
    settings = dataclasses.replace(stack.settings, proof_ttl_s=3600)
    svc = await Services.open(settings)
    await svc.start()
    out: dict[str, Any] = {}
    try:
        await migrate.migrate(pg_url)
        await writer.ensure_groups(svc)
        if "rollover" in args.parts:
            out["rollover"] = await rollover_phase(stack, svc, pg_url, args)
            await trim_all(svc)
        if "duplicatas" in args.parts:
            out["duplicatas"] = await duplicatas_phase(svc, pg_url, args.journal_rows, args.repeat)
    finally:
        await svc.close()
    return out


def run(
    root: Path,
    participants: int,
    journal_rows: int,
    seconds: float = 10.0,
    *,
    share: float = 0.5,
    repeat: int = 5,
    seed: int = 20261123,
    parts: str = "rollover,duplicatas",
    rollover_cores: str = CLIENT,
    rollover_nice: int = 0,
    rollover_chunk: int | None = None,
) -> dict[str, Any]:
    """The scenario in its own stack under root; returns its figures (with `ratios`). The
    caller's process should be pinned to the client core (bench.stack.pin_here)."""
    args = argparse.Namespace(
        participants=participants,
        journal_rows=journal_rows,
        seconds=seconds,
        share=share,
        repeat=repeat,
        seed=seed,
        parts=parts,
        rollover_cores=rollover_cores,
        rollover_nice=rollover_nice,
        rollover_chunk=rollover_chunk,
    )
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    started = time.perf_counter()
    stack = BenchStack(root / "stack", hold_ttl_s=HOLD_TTL_S).start()
    pg: embedded.EmbeddedPostgres | None = None
    try:
        unpin_here()  # Postgres and its backends: every core
        pg = embedded.EmbeddedPostgres(root / "postgres", durable=True).start()
        pin_here()
        out = asyncio.run(_run(stack, pg.url, args))
    finally:
        pin_here()
        if pg is not None:
            pg.stop()
        stack.stop()
    out["ratios"] = ratios(out)
    out["settings"] = {
        "participants": participants,
        "journal_rows": journal_rows,
        "seconds": seconds,
        "hold_share_of_max": share,
        "repeat": repeat,
        "rollover_process": {"cores": rollover_cores, "nice": rollover_nice, "chunk": rollover_chunk or "default"},
        "postgres": "durable (fsync, synchronous_commit, full_page_writes on); max_wal_size 8GB for the load",
        "redis_appendfsync": stack.appendfsync,
    }
    out["seconds"] = round(time.perf_counter() - started, 1)
    out["notes"] = [
        "Postgres rows of the rollover's participants are copied from one row the ledger writer stored"
        " (INSERT ... SELECT): the writer is too slow to project a million registrations for a benchmark's set-up.",
        "During the hold measurements a stand-in for the writer acknowledges and trims the holds' events;"
        " the rollover's own events are stored afterwards by the real writer (ledger_store).",
        "movements and journal are filled inside Postgres with one journal row per SALE/REVERSAL movement.",
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--participants", type=int, default=1_000_000, help="participants rolled over (default 1M)")
    ap.add_argument("--journal-rows", type=int, default=10_000_000, help="journal rows at the large point (10M)")
    ap.add_argument("--seconds", type=float, default=10.0, help="holds alone, and the max-rate phase (default 10)")
    ap.add_argument("--share", type=float, default=0.5, help="hold rate as a share of its max (default 0.5)")
    ap.add_argument("--repeat", type=int, default=5, help="runs of each by-hand generation (the best counts)")
    ap.add_argument("--parts", default="rollover,duplicatas", help="rollover, duplicatas or both")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--out", type=Path, help="where to write the JSON [bench/results/<date>-month.json]")
    ap.add_argument("--rollover-cores", default=CLIENT, help=f"cores of the rollover's process [{CLIENT}]")
    ap.add_argument("--rollover-nice", type=int, default=0, help="its niceness [0]")
    ap.add_argument("--rollover-chunk", type=int, help="participants per script call [balance_batch.CHUNK]")
    ap.add_argument("--rollover-worker", metavar="DATE", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rollover_worker:
        asyncio.run(_worker(args.rollover_worker, args.rollover_chunk))
        return 0
    pin_here()
    root = Path(tempfile.mkdtemp(prefix="convenio-month-", dir="/tmp"))
    try:
        out = run(
            root,
            args.participants,
            args.journal_rows,
            args.seconds,
            share=args.share,
            repeat=args.repeat,
            seed=args.seed,
            parts=args.parts,
            rollover_cores=args.rollover_cores,
            rollover_nice=args.rollover_nice,
            rollover_chunk=args.rollover_chunk,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    path = args.out or RESULTS / f"{datetime.date.today().isoformat()}-month.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    say(f"ratios: {json.dumps(out['ratios'])}")
    say(f"written {path} ({out['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
