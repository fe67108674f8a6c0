"""Redis loses its data after a day of sales: `rebuild` puts it back from the ledger, `verify`
finds zero drift, and the checkout goes on exactly where it stopped."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from gateway.holds import sweeper
from ledger.ops.rebuild import RedisNotEmpty, rebuild
from ledger.ops.verify import verify
from ledger.writer import writer
from tests.checkout import BackOffice, Clock, Terminal, mint_proof


async def lose_redis(svc) -> None:
    """What a Redis without persistence loses on a crash: every key of ours."""
    keys = [k async for k in svc.redis.scan_iter(match=f"{svc.keys.prefix}:*", count=1000)]
    if keys:
        await svc.redis.delete(*keys)


async def limits(t: Terminal, who: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for c, p in who:
        r = await t.limit(c, p)
        assert r.status_code == 200, r.text
        out[(c, p)] = r.json()
    return out


async def a_day_of_sales(seed: Terminal, backoffice: BackOffice, svc, clock: Clock) -> dict[str, Any]:
    """Sales of every kind on an individual and a shared convênio; returns what the day left."""
    day: dict[str, Any] = {}
    # a shared pool with two participants, one with a vehicle
    await backoffice.create_convenio("FROTA1", total_limit=50_000, tolerance=500, shared=True)
    await backoffice.add_participant("FROTA1", "MOT1", limit=0, password="1234")
    await backoffice.add_participant("FROTA1", "MOT2", limit=0, password="5678")
    await backoffice.add_vehicle("FROTA1", "MOT1", "ABC1D23", "caminhão")
    driver = seed.as_participant("FROTA1", "MOT1", "1234")
    fuel = (await driver.hold(12_000, vehicle={"plate": "ABC1D23", "odometer_km": 120_500})).json()
    await driver.commit(fuel["id"], coupon="NF-9")
    other = seed.as_participant("FROTA1", "MOT2", "5678")
    to_expire = (await other.hold(700, proof=await mint_proof(svc, "FROTA1", "MOT2"))).json()
    clock.advance(svc.settings.hold_ttl_s + 1)
    assert await sweeper.sweep_once(svc) == 1
    day["expired"] = to_expire
    # MOT2 guesses wrong until locked
    for _ in range(svc.settings.password_max_failures + 1):
        await other.check_password("0000")
    # the worked example's participant: a committed sale, a partial commit, a reversal, a pending hold
    sale = (await seed.hold(578)).json()
    await seed.commit(sale["id"], coupon="C-1")
    partial = (await seed.hold(2000)).json()
    await seed.commit(partial["id"], coupon="C-2", amount=1500)
    reversed_ = (await seed.hold(300)).json()
    await seed.commit(reversed_["id"], coupon="C-3")
    await seed.cancel(reversed_["id"], reason="devolução")
    day["pending_key"] = "idem-pending-1"
    day["pending_body"] = seed.sale(1000, await seed.proof())
    pending = await seed.hold(1000, idempotency_key=day["pending_key"], body=day["pending_body"])
    assert pending.status_code == 201, pending.text
    day["pending"] = pending.json()
    day["committed"] = sale
    declined = await seed.hold(10**7, idempotency_key="idem-declined-1")
    assert declined.status_code == 422
    day["declined"] = declined.json()

    day["who"] = [("EMP001", "CLI001"), ("FROTA1", "MOT1"), ("FROTA1", "MOT2")]
    return day


@pytest.fixture
async def day(seed: Terminal, backoffice: BackOffice, svc, clock: Clock, ledger_url: str) -> dict[str, Any]:
    d = await a_day_of_sales(seed, backoffice, svc, clock)
    await writer.drain(svc, ledger_url)
    return d


async def test_after_losing_redis_rebuild_restores_every_balance_and_verify_finds_no_drift(
    seed: Terminal, svc, day, ledger: asyncpg.Pool
) -> None:
    before = await limits(seed, day["who"])
    async with ledger.acquire() as conn:
        assert not (await verify(svc, conn, wait_s=0)).drift

    await lose_redis(svc)
    assert (await seed.limit()).status_code in (401, 404)  # nothing left, not even the API key

    async with ledger.acquire() as conn:
        done = await rebuild(svc, conn)
        assert done.counts["participants"] == 3 and done.counts["pending empenhos"] == 1
        report = await verify(svc, conn, wait_s=0)
    assert not report.drift, [d.line() for d in report.differences]
    assert report.pending == 1
    assert await limits(seed, day["who"]) == before


async def test_sales_go_on_after_a_rebuild(seed: Terminal, svc, day, ledger: asyncpg.Pool, ledger_url: str) -> None:
    await lose_redis(svc)
    async with ledger.acquire() as conn:
        await rebuild(svc, conn)

    # the hold placed before the loss is still there and can be committed
    pending = day["pending"]
    r = await seed.commit(pending["id"], coupon="C-4")
    assert r.status_code == 200, r.text
    # a retry of a hold answered before the loss replays the same answer, charging nothing
    again = await seed.hold(1000, idempotency_key=day["pending_key"], body=day["pending_body"])
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == pending
    # a retried commit of a sale committed before the loss replays too
    replay = await seed.commit(day["committed"]["id"], coupon="C-1")
    assert replay.status_code == 200 and replay.headers.get("Idempotent-Replayed") == "true"
    # the locked participant is still locked; the shared pool still sells
    locked = await seed.as_participant("FROTA1", "MOT2", "5678").check_password()
    assert locked.status_code == 423
    fuel = await seed.as_participant("FROTA1", "MOT1", "1234").hold(
        1000, vehicle={"plate": "ABC1D23", "odometer_km": 120_900}
    )
    assert fuel.status_code == 201, fuel.text

    await writer.drain(svc, ledger_url)
    async with ledger.acquire() as conn:
        report = await verify(svc, conn, wait_s=0)
    assert not report.drift, [d.line() for d in report.differences]


async def test_a_participant_in_two_convenios_is_found_in_both_after_a_rebuild(
    seed: Terminal, svc, day, backoffice, ledger: asyncpg.Pool, ledger_url: str
) -> None:
    await backoffice.add_participant("FROTA1", "CLI001", limit=0)
    await writer.drain(svc, ledger_url)
    await lose_redis(svc)
    async with ledger.acquire() as conn:
        await rebuild(svc, conn)
    r = await seed.client.get("/v1/participants/CLI001/convenios", headers=seed.headers)
    assert r.status_code == 200, r.text
    assert sorted(c["convenio"] for c in r.json()["convenios"]) == ["EMP001", "FROTA1"]


async def test_rebuild_refuses_a_redis_that_has_data(seed: Terminal, svc, day, ledger: asyncpg.Pool) -> None:
    async with ledger.acquire() as conn:
        with pytest.raises(RedisNotEmpty, match="--force"):
            await rebuild(svc, conn)
        # forced, it still refuses while events are not stored
        await seed.hold(100)
        with pytest.raises(RedisNotEmpty, match="not stored"):
            await rebuild(svc, conn, force=True)


async def test_a_forced_rebuild_over_live_data_changes_nothing(
    seed: Terminal, svc, day, ledger: asyncpg.Pool, ledger_url: str
) -> None:
    before = await limits(seed, day["who"])
    async with ledger.acquire() as conn:
        await rebuild(svc, conn, force=True)
        assert not (await verify(svc, conn, wait_s=0)).drift
    assert await limits(seed, day["who"]) == before


async def test_verify_reports_a_drift_with_the_exact_amounts(seed: Terminal, svc, day, ledger: asyncpg.Pool) -> None:
    # Redis loses R$ 1,23 of CLI001's balance; Postgres loses a pending hold's reservation of MOT1's pool
    await svc.redis.hincrby(svc.keys.participant("EMP001", "CLI001"), "balance", -123)
    async with ledger.acquire() as conn:
        balance = await conn.fetchval("SELECT balance FROM participants WHERE participant = 'CLI001'")
        await conn.execute("UPDATE convenios SET reserved = reserved + 45 WHERE code = 'FROTA1'")
        report = await verify(svc, conn, wait_s=0)
    assert report.drift
    found = {(d.convenio, d.participant, d.field): d.values for d in report.differences if "redis" in d.values}
    assert found[("EMP001", "CLI001", "balance")] == {"redis": balance - 123, "postgres": balance}
    assert found[("FROTA1", None, "reserved")]["postgres"] - found[("FROTA1", None, "reserved")]["redis"] == 45
    # and the journal agrees with Redis, not with the tampered projection
    journal = [d for d in report.differences if "journal" in d.values]
    assert [(d.convenio, d.field) for d in journal] == [("FROTA1", "reserved")]
    line = next(d.line() for d in report.differences if d.participant == "CLI001")
    assert "123 centavos (R$ 1,23)" in line
