"""The ledger writer under faults: a writer killed in the middle of a batch, two writers at
once while the checkout keeps selling, a writer whose Postgres connection is cut. Whatever
happens, every event emitted reaches the journal exactly once and the projections agree
with Redis to the centavo.

Real processes and real servers: writers run as `convenio ledger` daemons (or as Writer
objects in this process when the test needs to look inside them); sales go through the same
Lua scripts as the HTTP API, without argon2's cost (tests.checkout.mint_proof)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from gateway.holds import empenhos
from gateway.holds.schemas import CancelRequest, CommitRequest, EmpenhoRequest
from gateway.platform.errors import ApiError
from gateway.platform.streams import ledger_lag
from ledger.ops.verify import verify
from ledger.writer import writer
from tests.checkout import BackOffice, mint_proof

WRITER = [sys.executable, "-m", "ledger.cli", "ledger"]
API_KEY = "k-faults"


# -- the day of sales ----------------------------------------------------------------------------
@dataclass
class Sales:
    """What the terminals did: every empenho approved and how it ended, every protocol the
    gateway answered with, how many holds were declined."""

    who: list[tuple[str, str]]
    status: dict[str, str] = field(default_factory=dict)  # empenho id -> final status
    protocols: set[str] = field(default_factory=set)
    declined: int = 0
    done: int = 0

    async def one(self, svc, i: int) -> None:
        """Sale i: a hold, then (by i) a commit, a cancel, a commit and its reversal, nothing
        (left pending) or, every 29th, a hold far over the limit that is declined."""
        convenio, participant = self.who[i % len(self.who)]
        amount = 10**9 if i % 29 == 28 else 100 + i % 97
        req = EmpenhoRequest(
            convenio=convenio,
            participant=participant,
            amount=amount,
            terminal="PDV01",
            store="LOJA01",
            sale=f"V{i}",
            proof=await mint_proof(svc, convenio, participant),
        )
        try:
            held = (await empenhos.hold(svc, API_KEY, f"idem-{i}", req)).body
        except ApiError as exc:
            assert exc.code == "INSUFFICIENT_LIMIT", exc
            self.declined += 1
            return
        self.protocols.add(held.protocol)
        self.status[held.id] = "PENDING"
        if i % 4 in (0, 2):
            done = (await empenhos.commit(svc, held.id, CommitRequest(coupon=f"C{i}"))).body
            self.protocols.add(done.protocol)
            self.status[held.id] = "COMMITTED"
        if i % 4 in (1, 2):
            done = (await empenhos.cancel(svc, held.id, CancelRequest(reason="desistência"))).body
            self.protocols.add(done.protocol)
            self.status[held.id] = "CANCELLED" if i % 4 == 1 else "REVERSED"
        self.done += 1

    async def sell(self, svc, count: int, start: int = 0, at_once: int = 64) -> None:
        for first in range(start, start + count, at_once):
            await asyncio.gather(*(self.one(svc, i) for i in range(first, min(first + at_once, start + count))))


async def open_convenios(backoffice: BackOffice) -> list[tuple[str, str]]:
    """Six convênios over every shard: four with limits per participant, two shared pools."""
    who = []
    for n in range(6):
        code, shared = f"EMP{n:03d}", n >= 4
        await backoffice.create_convenio(code, total_limit=100_000_000, tolerance=1_000, shared=shared)
        for p in range(5):
            await backoffice.add_participant(code, f"CLI{p:03d}", limit=0 if shared else 10_000_000)
            who.append((code, f"CLI{p:03d}"))
    return who


# -- what the streams and the journal hold -------------------------------------------------------------
async def emitted(svc) -> dict[str, int]:
    """Events ever appended to each stream (trimming does not lower it)."""
    out = {}
    for stream in svc.keys.all_events():
        info = await svc.redis.xinfo_stream(stream)
        out[stream] = int(info["entries-added"])
    return out


async def pending(svc) -> dict[str, int]:
    return {s: (await svc.redis.xpending(s, writer.GROUP))["pending"] for s in svc.keys.all_events()}


async def journal_count(db: asyncpg.Pool) -> int:
    return await db.fetchval("SELECT count(*) FROM journal")


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str, step_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s}s"
        await asyncio.sleep(step_s)


async def assert_stored_exactly_once(svc, db: asyncpg.Pool, sales: Sales) -> None:
    """Journal = what the streams received, per stream; nothing pending; every answer the
    terminals got is in the journal; projections agree with Redis and with the journal."""
    added = await emitted(svc)
    per_stream = dict(await db.fetch("SELECT shard, count(*) FROM journal GROUP BY shard"))
    assert {svc.keys.events(shard): n for shard, n in per_stream.items()} == {s: n for s, n in added.items() if n}
    assert await journal_count(db) == sum(added.values())
    assert await db.fetchval("SELECT count(DISTINCT protocol) FROM journal") == sum(added.values())
    assert await db.fetchval("SELECT sum(stored) FROM ledger_streams") == sum(added.values())
    assert set(await pending(svc)) == set(svc.keys.all_events()) and not any((await pending(svc)).values())
    stored = {
        r["protocol"]
        for r in await db.fetch("SELECT protocol FROM journal WHERE protocol = ANY($1)", [*sales.protocols])
    }
    assert sales.protocols - stored == set(), "answers given to terminals missing from the journal"
    statuses = dict(await db.fetch("SELECT id, status FROM empenhos"))
    assert len(statuses) == len(sales.status)
    assert statuses == sales.status
    history = await db.fetchval("SELECT count(*) FROM empenho_history")
    assert history == len(sales.protocols)  # one history row per hold, commit and cancel
    async with db.acquire() as conn:
        report = await verify(svc, conn, wait_s=5)
    assert report.lag == 0
    assert not report.drift, "\n".join(d.line() for d in report.differences)
    assert report.journal_events == sum(added.values())


# -- writers as real processes -----------------------------------------------------------------------
async def start_writer(svc, ledger_url: str, consumer: str, log: Path) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "REDIS_URL": svc.settings.redis_url,
        "DATABASE_URL": ledger_url,
        "CONVENIO_KEY_PREFIX": svc.settings.key_prefix,
        "CONVENIO_SHARDS": str(svc.settings.shards),
        "CONVENIO_PEPPER": svc.settings.pepper.decode(),
    }
    with log.open("wb") as err:
        return await asyncio.create_subprocess_exec(
            *WRITER, "--consumer", consumer, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=err
        )


async def test_a_writer_killed_in_the_middle_of_a_batch_and_restarted_stores_every_event_once(
    svc, backoffice: BackOffice, ledger_url: str, ledger: asyncpg.Pool, tmp_path: Path
) -> None:
    sales = Sales(await open_convenios(backoffice))
    await sales.sell(svc, 2500)  # about 1900 events per shard: two batches of each stream
    backlog = sum((await emitted(svc)).values())
    assert backlog == sum([await svc.redis.xlen(s) for s in svc.keys.all_events()]) > 7_000

    first = await start_writer(svc, ledger_url, "wA", tmp_path / "wA.log")
    try:
        # a batch is 1000 entries of one stream: wait for the first whole one, then kill
        await eventually(lambda: _stored_at_least(ledger, 1000), 30, "the first writer stored nothing", step_s=0.005)
    finally:
        first.kill()  # SIGKILL: no clean-up of any kind
        await first.wait()
    assert first.returncode == -signal.SIGKILL
    halfway = await journal_count(ledger)
    left_pending = sum((await pending(svc)).values())
    assert 0 < halfway < backlog, f"killed too late to be mid-way: {halfway} of {backlog}"
    assert left_pending > 0, "no batch was in the middle of being stored"
    print(f"killed wA with {halfway} of {backlog} events stored, {left_pending} read but not acknowledged")

    second = await start_writer(svc, ledger_url, "wB", tmp_path / "wB.log")
    try:
        await eventually(lambda: _caught_up(svc, ledger, backlog), 30, "the second writer did not catch up")
        await assert_stored_exactly_once(svc, ledger, sales)
        assert len(sales.status) == sales.done and sales.declined > 0
    finally:
        if second.returncode is None:
            second.send_signal(signal.SIGTERM)
        returncode = await asyncio.wait_for(second.wait(), 10)
    log = (tmp_path / "wB.log").read_text()
    assert returncode == 0, log
    assert "Traceback" not in log, log


async def _stored_at_least(db: asyncpg.Pool, n: int) -> bool:
    return await journal_count(db) >= n


async def _caught_up(svc, db: asyncpg.Pool, total: int) -> bool:
    return await journal_count(db) == total and await ledger_lag(svc) == 0


# -- writers in this process, to look inside them ---------------------------------------------------
class Running:
    """Writer objects running as tasks (as the daemon runs one), with what each owned."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.writers: list[writer.Writer] = []
        self.tasks: list[asyncio.Task] = []
        self.owned: dict[str, set[str]] = {}
        self._watch = asyncio.create_task(self._watching())

    def start(self, w: writer.Writer) -> writer.Writer:
        self.writers.append(w)
        self.owned[w.consumer] = set()
        self.tasks.append(asyncio.create_task(w.run(self.stopping), name=w.consumer))
        return w

    async def _watching(self) -> None:
        while True:
            for w in self.writers:
                self.owned[w.consumer] |= w.owned
            await asyncio.sleep(0.01)

    def check_alive(self) -> None:
        for task in self.tasks:
            if task.done():
                raise AssertionError(f"writer {task.get_name()} died") from task.exception()

    async def stop(self) -> None:
        self.stopping.set()
        self._watch.cancel()
        done, _ = await asyncio.wait(self.tasks, timeout=10)
        assert len(done) == len(self.tasks), "a writer did not stop within 10s"
        for task in done:
            if task.exception() is not None:
                raise AssertionError(f"writer {task.get_name()} died") from task.exception()


async def test_two_writers_at_once_while_the_checkout_sells_store_nothing_twice_and_skip_nothing(
    svc, backoffice: BackOffice, ledger_url: str, ledger: asyncpg.Pool
) -> None:
    sales = Sales(await open_convenios(backoffice))
    selling = asyncio.Event()
    selling.set()

    async def checkout() -> None:
        i = 0
        while selling.is_set():
            await sales.sell(svc, 64, start=i)
            i += 64

    running = Running()
    shop = asyncio.create_task(checkout())
    try:
        w1 = running.start(writer.Writer(svc, ledger_url, "w1", rebalance_s=0.2))
        await eventually(lambda: _owns(w1, len(w1.streams)), 10, "w1 alone did not take every stream")
        await asyncio.sleep(0.3)
        sold_before_w2 = sales.done
        w2 = running.start(writer.Writer(svc, ledger_url, "w2", rebalance_s=0.2))
        # w1 gives back what is over its share and w2 takes it, while the sales go on
        await eventually(lambda: _stored_something(w2, running), 10, "w2 never stored anything")
        await asyncio.sleep(1.0)
        selling.clear()
        await shop
        await eventually(lambda: _no_lag(svc, running), 20, "the two writers did not catch up")
        assert w1.owned and w2.owned and not w1.owned & w2.owned
    finally:
        selling.clear()
        await asyncio.wait([shop])
        await running.stop()

    assert 0 < sold_before_w2 < sales.done - 100, "the sales did not go on while the writers shared the streams"
    handed_over = running.owned["w1"] & running.owned["w2"]
    assert handed_over, f"no stream changed hands: {running.owned}"
    assert running.owned["w1"] | running.owned["w2"] == set(svc.keys.all_events())
    assert w1.stored > 0 and w2.stored > 0
    assert w1.stored + w2.stored == sum((await emitted(svc)).values())  # each stored only what was new
    await assert_stored_exactly_once(svc, ledger, sales)


async def _owns(w: writer.Writer, n: int) -> bool:
    return len(w.owned) == n


async def _stored_something(w: writer.Writer, running: Running) -> bool:
    running.check_alive()
    return w.stored > 0


async def _no_lag(svc, running: Running) -> bool:
    running.check_alive()
    return await ledger_lag(svc) == 0


TERMINATE = """SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE application_name = $1 AND datname = current_database()"""


async def test_a_writer_whose_postgres_connection_is_cut_recovers_by_itself_and_stores_everything_once(
    svc, backoffice: BackOffice, ledger_url: str, ledger: asyncpg.Pool
) -> None:
    sales = Sales(await open_convenios(backoffice))
    await sales.sell(svc, 1500)
    backlog = sum((await emitted(svc)).values())

    running = Running()
    try:
        w = running.start(writer.Writer(svc, ledger_url, "w1", batch=200))
        # cut its connection four times while it works through the backlog ...
        for at in (k * backlog // 5 for k in range(1, 5)):
            await eventually(lambda n=at: _journal_reached(ledger, n, running), 20, f"{at} events never stored")
            assert await ledger.fetchval(TERMINATE, writer.APPLICATION) == 1
        await eventually(lambda: _no_lag(svc, running), 20, "the writer did not catch up after the cuts")
        # ... and once while it waits for new sales
        assert await ledger.fetchval(TERMINATE, writer.APPLICATION) == 1
        await sales.sell(svc, 200, start=1500)
        await eventually(lambda: _no_lag(svc, running), 20, "the writer did not store the sales after the cut")
        running.check_alive()
    finally:
        await running.stop()

    assert w.stored == sum((await emitted(svc)).values()) > backlog
    await assert_stored_exactly_once(svc, ledger, sales)


async def _journal_reached(db: asyncpg.Pool, n: int, running: Running) -> bool:
    running.check_alive()
    return await journal_count(db) >= n
