"""The ERP's order statuses: PF (processed) commits an order's holds, PC (cancelled)
cancels them; alterasaldo (`update_balance`) says whether the convênio balance moves. A batch
posted twice reports the same and moves money once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.auth.permissions import Permission
from ledger.writer import writer
from tests.checkout import BackOffice, Clock, Terminal, assert_error
from tests.test_credits import Account

PARAMS = "/v1/integration/order-status"


@pytest.fixture
async def account(client, backoffice: BackOffice, seed: Terminal, clock: Clock) -> Account:
    return Account(client, backoffice, seed, clock)


async def post(office: BackOffice, *items: tuple[str, str]) -> httpx.Response:
    """The ERP's integration posting order statuses (its key holds 3185)."""
    body = {"orders": [{"order": o, "status": s} for o, s in items]}
    return await office.client.post("/v1/orders/status", json=body, headers=office.headers)


async def report(office: BackOffice, *items: tuple[str, str]) -> list[dict[str, Any]]:
    r = await post(office, *items)
    assert r.status_code == 200, r.text
    return r.json()["orders"]


async def set_params(office: BackOffice, commit: list[str], cancel: list[str], update_balance: bool) -> httpx.Response:
    body = {"commit_statuses": commit, "cancel_statuses": cancel, "update_balance": update_balance}
    return await office.client.put(PARAMS, json=body, headers=office.headers)


async def an_order(account: Account, seed: Terminal, order: str, credit: int, convenio: int) -> tuple[str, str]:
    """An order paid partly with the customer's credits and partly on the convênio: its two holds."""
    held = await account.held("CLI001", credit, order)
    empenho = await seed.hold(convenio, order=order)
    assert empenho.status_code == 201, empenho.text
    return held["id"], empenho.json()["id"]


async def test_the_parameters_start_as_the_seed_s_and_only_3187_changes_them(
    backoffice: BackOffice, client: httpx.AsyncClient
) -> None:
    r = await client.get(PARAMS, headers=backoffice.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"commit_statuses": ["PF"], "cancel_statuses": ["PC"], "update_balance": False}

    r = await set_params(backoffice, ["PF", "FT", "PF"], ["PC", "CA"], True)
    assert r.status_code == 200, r.text
    changed = r.json()
    assert (changed["commit_statuses"], changed["cancel_statuses"], changed["update_balance"]) == (
        ["PF", "FT"],
        ["PC", "CA"],
        True,
    )
    assert (await client.get(PARAMS, headers=backoffice.headers)).json() == changed
    assert_error(await set_params(backoffice, ["PF"], ["PF"], True), 422, "INVALID_REQUEST", "cancel_statuses")

    erp = {"Authorization": f"Bearer {await backoffice.key(Permission.EMPENHO)}"}
    integration = {"Authorization": f"Bearer {await backoffice.key(Permission.INTEGRATION)}"}
    assert_error(await client.get(PARAMS, headers=erp), 403, "FORBIDDEN")
    body = {"commit_statuses": ["PF"], "cancel_statuses": ["PC"], "update_balance": False}
    assert_error(await client.put(PARAMS, json=body, headers=erp), 403, "FORBIDDEN")
    assert (await client.put(PARAMS, json=body, headers=integration)).status_code == 200
    r = await client.post("/v1/orders/status", json={"orders": [{"order": "X", "status": "PF"}]}, headers=integration)
    assert_error(r, 403, "FORBIDDEN")


async def test_a_batch_with_pf_and_pc_posted_twice_reports_the_same_and_moves_money_once(
    account: Account, seed: Terminal, backoffice: BackOffice, svc, ledger_url, monkeypatch
) -> None:
    from gateway.orders import order_status

    monkeypatch.setattr(order_status, "LEDGER_WAIT_S", 0.1)
    assert (await set_params(backoffice, ["PF"], ["PC"], True)).status_code == 200
    await account.registered("CLI001", "DEV-0001", "DEVOLUCAO", 1500, expires_in_days=30)
    await account.registered("CLI001", "CB-0001", "CASHBACK", 500, expires_in_days=10)
    sold_credit, sold_empenho = await an_order(account, seed, "PED-A", 1200, 2000)
    dropped_credit, dropped_empenho = await an_order(account, seed, "PED-B", 300, 1000)
    waiting_credit, waiting_empenho = await an_order(account, seed, "PED-C", 200, 500)
    assert (await seed.limit()).json()["reserved"] == 3500
    await writer.drain(svc, ledger_url)  # the empenhos of an order are found in the ledger

    batch = [("PED-A", "PF"), ("PED-B", "PC"), ("PED-C", "EM"), ("PED-NADA", "PF")]
    first = await report(backoffice, *batch)
    assert [(r["order"], r["status"], r["action"]) for r in first] == [
        ("PED-A", "PF", "COMMIT"),
        ("PED-B", "PC", "CANCEL"),
        ("PED-C", "EM", "NONE"),
        ("PED-NADA", "PF", "COMMIT"),
    ]
    a, b, c, unknown = first
    assert (a["committed"], a["cancelled"], a["unchanged"]) == ([sold_credit, sold_empenho], [], [])
    assert (b["cancelled"], b["committed"]) == ([dropped_credit, dropped_empenho], [])
    assert (c["unchanged"], c["committed"], c["cancelled"]) == ([waiting_credit, waiting_empenho], [], [])
    assert unknown["error"]["code"] == "UNKNOWN_ORDER" and "error" not in a

    limit = (await seed.limit()).json()
    assert (limit["balance"], limit["reserved"]) == (10000 - 2000, 500)
    remaining = await account.remaining("CLI001")
    assert remaining == {"CB-0001": 0, "DEV-0001": 1500 - 700 - 200}

    # PED-NADA is looked up again: the post waits for the ledger to store the first post's events
    r = await post(backoffice, *batch)
    assert_error(r, 503, "LEDGER_UNAVAILABLE")
    await writer.drain(svc, ledger_url)
    again = await report(backoffice, *batch)
    assert again == first
    assert (await seed.limit()).json() == limit
    assert await account.remaining("CLI001") == remaining
    await writer.drain(svc, ledger_url)
    assert await report(backoffice, *batch) == first  # once stored too

    order = (await account.order("PED-A")).json()
    assert [e["status"] for e in order["empenhos"]] == ["COMMITTED"]
    assert {c["status"] for c in order["credits"]} == {"COMMITTED"}
    coupon = (await seed.get(sold_empenho)).json()["coupon"]
    assert coupon == "PED-A"  # the order id is the empenho's coupon


async def test_with_update_balance_off_pf_releases_the_convenio_hold_without_a_debit(
    account: Account, seed: Terminal, backoffice: BackOffice, svc, ledger_url, ledger
) -> None:
    """The ERP's default (alterasaldo = 0): the ERP keeps the balance; processing only releases
    the checkout's hold. The customer's credits are the gateway's own: the order consumed them."""
    await account.registered("CLI001", "MAN-0001", "MANUAL", 1000)
    credit_hold, empenho = await an_order(account, seed, "PED-D", 600, 2500)
    await writer.drain(svc, ledger_url)

    [result] = await report(backoffice, ("PED-D", "PF"))
    assert (result["action"], result["update_balance"]) == ("COMMIT", False)
    assert (result["committed"], result["released"]) == ([credit_hold], [empenho])
    limit = (await seed.limit()).json()
    assert (limit["balance"], limit["reserved"], limit["available"]) == (10000, 0, 11000)
    assert await account.remaining("CLI001") == {"MAN-0001": 400}
    view = (await seed.get(empenho)).json()
    assert view["status"] == "CANCELLED" and "without a balance change" in view["cancel_reason"]

    assert await report(backoffice, ("PED-D", "PF")) == [result]
    await writer.drain(svc, ledger_url)
    async with ledger.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT action, update_balance, report FROM order_statuses WHERE order_ref = $1", "PED-D"
        )
        sales = await conn.fetchval("SELECT count(*) FROM movements WHERE empenho_id = $1", empenho)
    assert (row["action"], row["update_balance"], sales) == ("COMMIT", False, 0)


async def test_with_update_balance_on_pf_debits_and_a_later_pc_gives_everything_back(
    account: Account, seed: Terminal, backoffice: BackOffice, svc, ledger_url
) -> None:
    assert (await set_params(backoffice, ["PF"], ["PC"], True)).status_code == 200
    await account.registered("CLI001", "RUP-0001", "RUPTURA", 800)
    credit_hold, empenho = await an_order(account, seed, "PED-E", 800, 3000)
    await writer.drain(svc, ledger_url)

    [done] = await report(backoffice, ("PED-E", "PF"))
    assert done["committed"] == [credit_hold, empenho]
    assert (await seed.limit()).json()["balance"] == 10000 - 3000
    assert await account.remaining("CLI001") == {"RUP-0001": 0}

    # the order is cancelled after it was processed: the sale is reversed, the credit given back
    await writer.drain(svc, ledger_url)  # (a post first waits for the ledger to hold the orders' holds)
    [undone] = await report(backoffice, ("PED-E", "PC"))
    assert undone["reversed"] == [credit_hold, empenho]
    assert (await seed.limit()).json()["balance"] == 10000
    assert await account.remaining("CLI001") == {"RUP-0001": 800}
    # both posted again, in one batch: the same reports, nothing moves
    assert await report(backoffice, ("PED-E", "PF"), ("PED-E", "PC")) == [done, undone]
    assert (await seed.limit()).json()["balance"] == 10000
    assert await account.remaining("CLI001") == {"RUP-0001": 800}


async def test_with_update_balance_off_pc_keeps_a_committed_sale_but_gives_credits_back(
    account: Account, seed: Terminal, backoffice: BackOffice, svc, ledger_url
) -> None:
    await account.registered("CLI001", "RUP-0002", "RUPTURA", 800)
    credit_hold, empenho = await an_order(account, seed, "PED-F", 500, 1000)
    assert (await seed.commit(empenho, coupon="NF-F")).status_code == 200
    assert (await account.commit(credit_hold, coupon="NF-F")).status_code == 200
    await writer.drain(svc, ledger_url)

    [result] = await report(backoffice, ("PED-F", "PC"))
    assert (result["reversed"], result["unchanged"]) == ([credit_hold], [empenho])
    assert (await seed.limit()).json()["balance"] == 10000 - 1000  # the ERP keeps the balance
    assert await account.remaining("CLI001") == {"RUP-0002": 800}


async def test_a_batch_is_checked_whole(backoffice: BackOffice) -> None:
    client, headers = backoffice.client, backoffice.headers
    cases = [
        ({"orders": []}, "orders"),
        ({"orders": [{"order": "PED 1", "status": "PF"}]}, "orders[0].order"),
        ({"orders": [{"order": "PED-1", "status": "pf"}]}, "orders[0].status"),
        ({"orders": [{"order": "PED-1"}]}, "orders[0].status"),
        ({"orders": [{"order": f"PED-{i}", "status": "PF"} for i in range(501)]}, "orders"),
    ]
    for body, field in cases:
        assert_error(await client.post("/v1/orders/status", json=body, headers=headers), 422, "INVALID_REQUEST", field)


async def test_a_cancelling_status_needs_the_cancel_permission_too(
    account: Account, backoffice: BackOffice, client, svc, ledger_url
) -> None:
    """PC reverses sales: a key that may not cancel (3186) may not post it either."""
    await account.registered("CLI001", "DEV-1", "DEVOLUCAO", 1_000)
    held = await account.held("CLI001", 1_000, "PED-9")
    assert (await account.commit(held["id"], coupon="NF-9")).status_code == 200
    only_3185 = {"Authorization": f"Bearer {await backoffice.key(Permission.EMPENHO)}"}
    await writer.drain(svc, ledger_url)
    r = await client.post("/v1/orders/status", json={"orders": [{"order": "PED-9", "status": "PC"}]}, headers=only_3185)
    assert_error(r, 403, "FORBIDDEN")
    r = await client.post("/v1/orders/status", json={"orders": [{"order": "PED-9", "status": "PF"}]}, headers=only_3185)
    assert r.status_code == 200, r.text


@contextlib.asynccontextmanager
async def ledger_writer(svc: Any, ledger_url: str) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    writing = asyncio.create_task(writer.run(svc, ledger_url, "order-status", stopping))
    try:
        yield
    finally:
        stopping.set()
        await writing


async def forget(svc: Any, *hold_ids: str) -> None:
    """What Redis does once final holds' time there has passed."""
    for hold_id in hold_ids:
        shard = int(hold_id.split("-", 1)[0][1:])
        if hold_id.startswith("C"):
            await svc.redis.delete(svc.keys.credit_hold(shard, hold_id))
        else:
            await svc.redis.delete(svc.keys.empenho(shard, hold_id), svc.keys.empenho_history(shard, hold_id))


async def test_pc_on_an_order_returned_in_part_reverses_what_is_left_even_after_redis_forgot_it(
    account: Account, seed: Terminal, backoffice: BackOffice, svc, ledger_url
) -> None:
    assert (await set_params(backoffice, ["PF"], ["PC"], True)).status_code == 200
    await account.registered("CLI001", "RUP-0003", "RUPTURA", 800)
    credit_hold, empenho = await an_order(account, seed, "PED-G", 800, 3000)
    await writer.drain(svc, ledger_url)
    assert (await report(backoffice, ("PED-G", "PF")))[0]["committed"] == [credit_hold, empenho]

    # one item comes back at a store: part of the sale, part of the credit
    assert (await seed.return_sale(empenho, 1000, store="LOJA02", terminal="PDV07")).status_code == 201
    assert (await account.return_part(credit_hold, 300)).status_code == 201
    assert (await seed.limit()).json()["balance"] == 10000 - 2000
    assert await account.remaining("CLI001") == {"RUP-0003": 300}

    # weeks later the ERP cancels the order; Redis no longer keeps either hold, the ledger does
    # (its writer running, as in production: each return of a forgotten hold waits for it)
    await writer.drain(svc, ledger_url)
    await forget(svc, credit_hold, empenho)
    async with ledger_writer(svc, ledger_url):
        [undone] = await report(backoffice, ("PED-G", "PC"))
    assert (undone["reversed"], undone.get("error")) == ([credit_hold, empenho], None)
    assert (await seed.limit()).json()["balance"] == 10000
    assert await account.remaining("CLI001") == {"RUP-0003": 800}
    assert await report(backoffice, ("PED-G", "PC")) == [undone]  # posted again: nothing moves
    assert (await seed.limit()).json()["balance"] == 10000

    await writer.drain(svc, ledger_url)
    order = (await account.order("PED-G")).json()
    assert sorted((x["kind"], x["sale"], x["amount"]) for x in order["returns"]) == [
        ("CREDIT_HOLD", credit_hold, 300),
        ("EMPENHO", empenho, 1000),
    ]
    first = next(x for x in order["returns"] if x["amount"] == 1000)
    assert (first["store"], first["terminal"], first["refund"]) == ("LOJA02", "PDV07", "POOL")
    [sale] = order["empenhos"]
    assert (sale["status"], sale["committed_amount"], sale["returned"]) == ("REVERSED", 3000, 1000)
    assert [(c["status"], c["amount"], c["returned"]) for c in order["credits"]] == [("REVERSED", 800, 300)]


async def test_pc_on_a_live_order_with_returns_reverses_what_they_left(
    account: Account, seed: Terminal, backoffice: BackOffice, svc, ledger_url
) -> None:
    assert (await set_params(backoffice, ["PF"], ["PC"], True)).status_code == 200
    await account.registered("CLI001", "RUP-0004", "RUPTURA", 800)
    credit_hold, empenho = await an_order(account, seed, "PED-H", 800, 3000)
    await writer.drain(svc, ledger_url)
    await report(backoffice, ("PED-H", "PF"))
    assert (await seed.return_sale(empenho, 3000)).status_code == 201  # all of the sale came back
    assert (await account.return_part(credit_hold, 300)).status_code == 201
    await writer.drain(svc, ledger_url)
    [undone] = await report(backoffice, ("PED-H", "PC"))
    assert (undone["reversed"], undone["unchanged"], undone.get("error")) == ([credit_hold], [empenho], None)
    assert (await seed.limit()).json()["balance"] == 10000
    assert await account.remaining("CLI001") == {"RUP-0004": 800}
    live = (await account.order("PED-H")).json()  # read from Redis, where both holds still are
    assert sorted((x["kind"], x["amount"]) for x in live["returns"]) == [("CREDIT_HOLD", 300), ("EMPENHO", 3000)]
    assert [(c["status"], c["returned"]) for c in live["credits"]] == [("REVERSED", 300)]
