"""Returns of an order paid with the customer's credits: in part and at any time, each centavo
back to the credit it came from, last picked first, also after Redis forgot the hold; a credit
that has expired meanwhile gets its share back and stays expired, and finance sees the lapse; a
reversal takes what the returns left; orders racing to return the same forgotten hold never give
back more than it committed; the ledger, verify and rebuild agree afterwards."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import asyncpg
import pytest

from gateway.credits import export
from ledger.ops.rebuild import rebuild
from ledger.ops.verify import credit_drift, verify
from ledger.writer import writer
from tests.checkout import BackOffice, Clock, Terminal, assert_error
from tests.test_credits import Account, three_credits, used

DAY = 24 * 3600


@pytest.fixture
async def account(client, backoffice: BackOffice, seed: Terminal, clock: Clock) -> Account:
    return Account(client, backoffice, seed, clock)


async def paid(account: Account, amount: int, order: str) -> str:
    held = await account.held("CLI001", amount, order)
    assert (await account.commit(held["id"], coupon=f"NF-{order}")).status_code == 200
    return held["id"]


async def forget(svc: Any, hold_id: str) -> None:
    """What Redis does once a final hold's time there has passed."""
    shard = int(hold_id.split("-", 1)[0][1:])
    await svc.redis.delete(svc.keys.credit_hold(shard, hold_id))


async def no_drift(svc: Any, ledger_url: str) -> None:
    await writer.drain(svc, ledger_url)
    async with asyncpg.create_pool(ledger_url, min_size=1, max_size=1) as pool, pool.acquire() as conn:
        assert (await verify(svc, conn)).differences == []
        assert await credit_drift(svc, conn) == []


async def test_an_order_returned_in_part_after_redis_forgot_it_gives_each_part_back_to_its_credit(
    account: Account, svc, clock: Clock, ledger_url: str
) -> None:
    await three_credits(account)  # DEV-0001 1500 (30 days), CB-0001 500 (10 days), MAN-0001 2000
    order = await paid(account, 3000, "PED-200")  # took CB 500, DEV 1500, MAN 1000
    await writer.drain(svc, ledger_url)
    clock.advance(5 * DAY)
    await forget(svc, order)

    r = await account.return_part(order, 1200, key="DEV-PED-200-1", reason="troca")
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["hold"], body["amount"], body["returned"], body["returnable"]) == (order, 1200, 1200, 1800)
    # last picked first: the manual credit gets its 1000 back, the return credit 200
    assert [(c["reference"], c["amount"], c["expired"]) for c in body["credits"]] == [
        ("DEV-0001", 200, False),
        ("MAN-0001", 1000, False),
    ]
    assert await account.remaining("CLI001") == {"DEV-0001": 200, "CB-0001": 0, "MAN-0001": 2000}

    again = await account.return_part(order, 1200, key="DEV-PED-200-1", reason="troca")
    assert again.status_code == 201 and again.json() == body
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await account.credits("CLI001"))["available"] == 2200

    more = assert_error(await account.return_part(order, 1801), 422, "RETURN_EXCEEDS_SALE")
    assert more["returnable"] == 1800

    view = await account.hold_view(order)
    assert (view["status"], view["returned"], view["returnable"]) == ("COMMITTED", 1200, 1800)
    assert [(p["reference"], p["committed"], p["returned"]) for p in view["parts"]] == [
        ("CB-0001", 500, 0),
        ("DEV-0001", 1500, 200),
        ("MAN-0001", 1000, 1000),
    ]
    assert [(x["amount"], x["reason"], x["store"]) for x in view["returns"]] == [(1200, "troca", "LOJA01")]
    await no_drift(svc, ledger_url)
    await forget(svc, order)
    assert await account.hold_view(order) == view  # the ledger's record shows the same


async def test_a_credit_expired_meanwhile_gets_its_share_back_and_stays_expired(
    account: Account, svc, clock: Clock, ledger_url: str
) -> None:
    await three_credits(account)
    order = await paid(account, 3000, "PED-201")
    clock.advance(11 * DAY)  # the cashback (10 days) has expired; the return credit (30) has not
    r = await account.return_part(order, 3000)
    assert r.status_code == 201, r.text
    assert [(c["reference"], c["amount"], c["expired"]) for c in r.json()["credits"]] == [
        ("CB-0001", 500, True),
        ("DEV-0001", 1500, False),
        ("MAN-0001", 1000, False),
    ]
    listing = await account.credits("CLI001")
    assert {c["reference"]: (c["remaining"], c["status"]) for c in listing["credits"]} == {
        "DEV-0001": (1500, "ACTIVE"),
        "CB-0001": (500, "EXPIRED"),
        "MAN-0001": (2000, "ACTIVE"),
    }
    assert listing["available"] == 3500  # not the lapsed cashback
    assert_error(await account.cancel(order), 409, "FULLY_RETURNED")

    # finance sees the lapse, each line with the return and the order it gives back
    await writer.drain(svc, ledger_url)
    async with asyncpg.create_pool(ledger_url, min_size=1, max_size=1) as pool, pool.acquire() as conn:
        lines = (await export.export(conn, datetime.date(2000, 1, 1), datetime.date(2199, 1, 1)))["movements"]
    returned = [(m["kind"], m["reference"], m["amount"], m["sale"]) for m in lines if m["return_id"]]
    assert returned == [
        ("RETURN_EXPIRED", "CB-0001", 500, order),
        ("RETURN", "DEV-0001", 1500, order),
        ("RETURN", "MAN-0001", 1000, order),
    ]
    await no_drift(svc, ledger_url)


async def test_returns_then_a_reversal_takes_what_they_left(account: Account) -> None:
    await three_credits(account)
    order = await paid(account, 3000, "PED-202")
    assert (await account.return_part(order, 700)).json()["returnable"] == 2300
    reversed_ = await account.cancel(order, reason="pedido cancelado")
    assert reversed_.status_code == 200, reversed_.text
    assert (reversed_.json()["status"], reversed_.json()["amount"]) == ("REVERSED", 2300)
    assert used(reversed_.json()) == [
        ("CB-0001", "CASHBACK", 500),
        ("DEV-0001", "DEVOLUCAO", 1500),
        ("MAN-0001", "MANUAL", 300),
    ]
    assert await account.remaining("CLI001") == {"DEV-0001": 1500, "CB-0001": 500, "MAN-0001": 2000}
    assert_error(await account.return_part(order, 1), 409, "CREDIT_HOLD_NOT_COMMITTED")
    pending = await account.held("CLI001", 100, "PED-203")
    assert (
        assert_error(await account.return_part(pending["id"], 100), 409, "CREDIT_HOLD_NOT_COMMITTED")["status"]
        == "PENDING"
    )


async def test_two_stores_return_the_same_forgotten_order_at_once(account: Account, svc, ledger_url: str) -> None:
    await three_credits(account)
    order = await paid(account, 3000, "PED-204")
    await writer.drain(svc, ledger_url)
    await forget(svc, order)
    answers = await asyncio.gather(
        *(account.return_part(order, 500, store=f"LOJA0{1 + n % 2}", terminal=f"PDV{n:02d}") for n in range(10))
    )
    approved = [r for r in answers if r.status_code == 201]
    assert len(approved) == 6, [r.text for r in answers]
    assert all(r.json()["error"]["code"] == "RETURN_EXCEEDS_SALE" for r in answers if r.status_code != 201)
    assert await account.remaining("CLI001") == {"DEV-0001": 1500, "CB-0001": 500, "MAN-0001": 2000}
    await no_drift(svc, ledger_url)
    async with asyncpg.create_pool(ledger_url, min_size=1, max_size=1) as pool, pool.acquire() as conn:
        assert await conn.fetchval("SELECT returned FROM credit_holds WHERE id = $1", order) == 3000
        assert await conn.fetchval("SELECT count(*) FROM credit_hold_returns WHERE hold_id = $1", order) == 6


async def test_rebuild_and_a_return_after_it_agree(account: Account, svc, ledger_url: str) -> None:
    await three_credits(account)
    order = await paid(account, 3000, "PED-205")
    assert (await account.return_part(order, 1000)).status_code == 201
    await writer.drain(svc, ledger_url)
    async with asyncpg.create_pool(ledger_url, min_size=1, max_size=1) as pool, pool.acquire() as conn:
        await rebuild(svc, conn, force=True)
    assert await account.remaining("CLI001") == {"DEV-0001": 0, "CB-0001": 0, "MAN-0001": 2000}
    r = await account.return_part(order, 2000)
    assert r.status_code == 201 and r.json()["returnable"] == 0, r.text
    assert await account.remaining("CLI001") == {"DEV-0001": 1500, "CB-0001": 500, "MAN-0001": 2000}
    await no_drift(svc, ledger_url)


async def test_an_order_redis_forgot_is_reversed_for_what_its_returns_left(
    account: Account, svc, clock: Clock, ledger_url: str
) -> None:
    await three_credits(account)
    order = await paid(account, 3000, "PED-206")
    assert (await account.return_part(order, 1000)).status_code == 201
    await writer.drain(svc, ledger_url)
    clock.advance(5 * DAY)
    await forget(svc, order)
    r = await account.cancel(order, reason="pedido cancelado")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["amount"]) == ("REVERSED", 2000)
    assert await account.remaining("CLI001") == {"DEV-0001": 1500, "CB-0001": 500, "MAN-0001": 2000}
    await no_drift(svc, ledger_url)
