"""The ledger writer copies every decision into the Postgres journal exactly once, even when
a writer dies between storing a batch and acknowledging it."""

from __future__ import annotations

import dataclasses
import uuid

import asyncpg
import pytest

from ledger import writer
from ledger.migrate import migrate
from tests.checkout import Terminal


@pytest.fixture
async def journal(postgres_server):
    url = postgres_server.url.rsplit("/", 1)[0] + f"/ledger_{uuid.uuid4().hex[:8]}"
    await migrate(url)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def stream_total(gw) -> int:
    return sum([await gw.redis.xlen(s) for s in gw.keys.all_events()])


async def test_every_event_of_a_sale_reaches_the_journal_once(seed: Terminal, gw, journal) -> None:
    await writer.ensure_groups(gw)
    held = (await seed.hold(578)).json()
    await seed.commit(held["id"], coupon="CUPOM-1")
    assert await writer.drain_once(gw, journal, "w1") == await stream_total(gw)
    assert await writer.drain_once(gw, journal, "w1") == 0
    rows = await journal.fetch("SELECT type, data FROM journal ORDER BY stream_id")
    types = [r["type"] for r in rows]
    assert "empenho.held" in types and "empenho.committed" in types
    assert len(rows) == await stream_total(gw)
    committed = next(r for r in rows if r["type"] == "empenho.committed")
    assert '"amount": 578' in committed["data"] and '"balance": 9422' in committed["data"]


async def test_a_writer_that_dies_after_storing_but_before_acknowledging_loses_and_doubles_nothing(
    seed: Terminal, gw, journal
) -> None:
    await writer.ensure_groups(gw)
    held = (await seed.hold(578)).json()
    await seed.cancel(held["id"])
    # writer w1 reads the batch and commits it to Postgres, then dies before XACK
    reply = await gw.redis.xreadgroup(writer.GROUP, "w1", dict.fromkeys(gw.keys.all_events(), ">"), count=1000)
    shard_of = gw.keys.all_events()
    rows = [writer._row(shard_of[s.decode()], sid, f) for s, entries in writer._entries(reply) for sid, f in entries]
    await journal.execute(writer.INSERT, *[list(c) for c in zip(*rows, strict=True)])

    # w2 claims w1's pending batch and stores it again: nothing doubles, nothing stays pending
    handled = await writer.drain_once(gw, journal, "w2", claim_idle_ms=0)
    assert handled == await stream_total(gw)
    assert await writer.drain_once(gw, journal, "w2", claim_idle_ms=0) == 0
    assert await journal.fetchval("SELECT count(*) FROM journal") == await stream_total(gw)
    for stream in gw.keys.all_events():
        assert (await gw.redis.xpending(stream, writer.GROUP))["pending"] == 0


async def test_readyz_reports_the_ledger_lag_and_turns_false_past_its_bound(seed: Terminal, gw, journal) -> None:
    from gateway.ledger_lag import ledger_lag

    await seed.hold(578)
    behind = await ledger_lag(gw)
    assert behind == await stream_total(gw) > 0  # no writer has run yet
    r = await seed.client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"]["ledger_lag"] == str(behind)

    await writer.ensure_groups(gw)
    await writer.drain_once(gw, journal, "w1")
    assert await ledger_lag(gw) == 0

    await seed.hold(100)
    gw.settings = dataclasses.replace(gw.settings, ledger_lag_max=0)
    r = await seed.client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    metrics = await seed.client.get("/metrics")
    assert "convenio_ledger_lag_events" in metrics.text
