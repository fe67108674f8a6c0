"""Returns (devoluções) of a committed sale, in part and at any time: CLIENTE 001 returns one item
of a R$ 57,80 purchase a month later, after Redis forgot the sale; two stores return the same
sale at once; a reversal takes what the returns left; a return refunded as the customer's credit;
the ledger, verify and rebuild agree afterwards."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import httpx

from gateway.credits import credits
from gateway.returns import refunds
from ledger.ops.rebuild import rebuild
from ledger.ops.verify import verify
from ledger.writer import writer
from tests.checkout import BackOffice, Clock, Terminal, assert_error

DAY = 24 * 3600
LIMIT = 10_000  # the worked example's R$ 100,00


async def sold(t: Terminal, amount: int, **extra: Any) -> str:
    held = await t.hold(amount, **extra)
    assert held.status_code == 201, held.text
    done = await t.commit(held.json()["id"], coupon="CUPOM-5780")
    assert done.status_code == 200, done.text
    return held.json()["id"]


async def balance(t: Terminal) -> int:
    r = await t.limit()
    assert r.status_code == 200, r.text
    return r.json()["balance"]


async def forget(svc: Any, empenho_id: str) -> None:
    """What Redis does once a final empenho's time there has passed."""
    shard = int(empenho_id.split("-", 1)[0][1:])
    await svc.redis.delete(svc.keys.empenho(shard, empenho_id), svc.keys.empenho_history(shard, empenho_id))


async def test_cliente_001_returns_one_item_a_month_after_redis_forgot_the_sale(
    seed: Terminal, svc, clock: Clock, ledger_url: str
) -> None:
    sale = await sold(seed, 5780)
    assert await balance(seed) == LIMIT - 5780
    await writer.drain(svc, ledger_url)
    clock.advance(30 * DAY)
    await forget(svc, sale)

    r = await seed.return_sale(sale, 1200, idempotency_key="DEV-0001", reason="troca de tamanho")
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["empenho"], body["amount"], body["returned"], body["returnable"]) == (sale, 1200, 1200, 4580)
    assert body["balance"] == LIMIT - 5780 + 1200 and body["refund"] == "POOL"
    assert await balance(seed) == LIMIT - 5780 + 1200

    again = await seed.return_sale(sale, 1200, idempotency_key="DEV-0001", reason="troca de tamanho")
    assert again.status_code == 201 and again.json() == body
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await balance(seed) == LIMIT - 5780 + 1200

    more = await seed.return_sale(sale, 5000, idempotency_key="DEV-0002")
    error = assert_error(more, 422, "RETURN_EXCEEDS_SALE")
    assert error["returnable"] == 4580 and error["protocol"]

    view = (await seed.get(sale)).json()
    assert (view["status"], view["returned"], view["returnable"]) == ("COMMITTED", 1200, 4580)
    assert [(x["amount"], x["refund"], x["reason"]) for x in view["returns"]] == [(1200, "POOL", "troca de tamanho")]


async def test_two_stores_return_the_same_forgotten_sale_at_once(seed: Terminal, svc, ledger_url: str) -> None:
    sale = await sold(seed, 5780)
    await writer.drain(svc, ledger_url)
    await forget(svc, sale)
    answers = await asyncio.gather(
        *(seed.return_sale(sale, 500, store=f"LOJA0{1 + n % 2}", terminal=f"PDV{n:02d}") for n in range(20))
    )
    approved = [r for r in answers if r.status_code == 201]
    assert len(approved) == 11, [r.text for r in answers]
    assert all(r.json()["error"]["code"] == "RETURN_EXCEEDS_SALE" for r in answers if r.status_code != 201)
    assert sorted(r.json()["returned"] for r in approved) == list(range(500, 5501, 500))
    assert await balance(seed) == LIMIT - 5780 + 5500
    await writer.drain(svc, ledger_url)
    async with asyncpg.create_pool(ledger_url, min_size=1, max_size=1) as pool, pool.acquire() as conn:
        assert await conn.fetchval("SELECT returned FROM empenhos WHERE id = $1", sale) == 5500
        assert await conn.fetchval("SELECT count(*) FROM empenho_returns WHERE empenho_id = $1", sale) == 11
        assert (await verify(svc, conn)).differences == []


async def test_returns_in_parts_then_a_reversal_takes_what_is_left(seed: Terminal) -> None:
    sale = await sold(seed, 5780)
    assert (await seed.return_sale(sale, 1000)).status_code == 201
    assert (await seed.return_sale(sale, 780)).json()["returnable"] == 4000
    reversed_ = await seed.cancel(sale, reason="cliente desistiu")
    assert reversed_.status_code == 200, reversed_.text
    assert (reversed_.json()["status"], reversed_.json()["amount"]) == ("REVERSED", 4000)
    assert await balance(seed) == LIMIT
    assert_error(await seed.return_sale(sale, 100), 409, "EMPENHO_NOT_COMMITTED")
    view = (await seed.get(sale)).json()
    assert (view["status"], view["returned"], view["returnable"]) == ("REVERSED", 1780, 0)


async def test_a_sale_returned_whole_cannot_be_reversed_and_a_hold_cannot_be_returned(seed: Terminal) -> None:
    sale = await sold(seed, 578)
    assert (await seed.return_sale(sale, 578)).json()["returnable"] == 0
    assert await balance(seed) == LIMIT
    assert_error(await seed.cancel(sale), 409, "FULLY_RETURNED")
    assert_error(await seed.return_sale(sale, 1), 422, "RETURN_EXCEEDS_SALE")
    pending = await seed.hold(300)
    assert_error(await seed.return_sale(pending.json()["id"], 100), 409, "EMPENHO_NOT_COMMITTED")
    assert_error(await seed.return_sale("E1-01ARZ3NDEKTSV4RRFFQ69G5FAV", 100), 404, "UNKNOWN_EMPENHO")


async def test_the_same_key_for_another_return_is_a_conflict(seed: Terminal) -> None:
    sale = await sold(seed, 5780)
    assert (await seed.return_sale(sale, 100, idempotency_key="K1")).status_code == 201
    assert_error(await seed.return_sale(sale, 200, idempotency_key="K1"), 409, "IDEMPOTENCY_CONFLICT")


async def test_a_return_refunded_as_credit_leaves_the_balance_and_credits_the_customer_once(
    seed: Terminal, backoffice: BackOffice, client: httpx.AsyncClient
) -> None:
    sale = await sold(seed, 5780, order="PED-WEB-9")
    r = await seed.return_sale(sale, 1200, idempotency_key="DEV-CR-1", store="LOJA02", refund="CREDIT")
    assert r.status_code == 201, r.text
    credit = r.json()["credit"]
    assert r.json()["refund"] == "CREDIT" and r.json()["balance"] == LIMIT - 5780
    assert credit["reference"] == f"DEV-{r.json()['id']}"
    again = await seed.return_sale(sale, 1200, idempotency_key="DEV-CR-1", store="LOJA02", refund="CREDIT")
    assert again.json() == r.json() and again.headers["Idempotent-Replayed"] == "true"
    credits = await client.get("/v1/participants/CLI001/credits", headers=backoffice.headers)
    listed = credits.json()
    assert listed["available"] == 1200
    [devolucao] = listed["credits"]
    assert (devolucao["type"], devolucao["amount"], devolucao["origin"]) == (
        "DEVOLUCAO",
        1200,
        {"channel": "STORE", "store": "LOJA02", "terminal": "PDV01", "order": "PED-WEB-9"},
    )
    assert await balance(seed) == LIMIT - 5780

    # the store credit pays part of the customer's next order
    body = {"customer": "CLI001", "amount": 1000, "order": "PED-LOJA-10", "channel": "STORE", "store": "LOJA02"}
    held = await client.post("/v1/credit-holds", json=body, headers={**seed.headers, "Idempotency-Key": "PED-LOJA-10"})
    assert held.status_code == 201, held.text
    assert [(c["reference"], c["amount"]) for c in held.json()["credits"]] == [(credit["reference"], 1000)]
    spent = await client.post(
        f"/v1/credit-holds/{held.json()['id']}/commit", json={"coupon": "NF-10"}, headers=seed.headers
    )
    assert spent.status_code == 200, spent.text
    after = (await client.get("/v1/participants/CLI001/credits", headers=backoffice.headers)).json()
    assert after["available"] == 200


async def test_rebuild_and_verify_know_the_returns(seed: Terminal, svc, ledger_url: str) -> None:
    sale = await sold(seed, 5780)
    assert (await seed.return_sale(sale, 1200)).status_code == 201
    await writer.drain(svc, ledger_url)
    before = (await seed.get(sale)).json()
    async with asyncpg.create_pool(ledger_url, min_size=1, max_size=1) as pool, pool.acquire() as conn:
        assert (await verify(svc, conn)).differences == []
        await rebuild(svc, conn, force=True)
        assert (await verify(svc, conn)).differences == []
    assert (await seed.get(sale)).json() == before
    assert (await seed.return_sale(sale, 4580)).json()["returnable"] == 0
    assert_error(await seed.return_sale(sale, 1), 422, "RETURN_EXCEEDS_SALE")


async def test_a_credit_refund_its_request_never_made_is_made_once_by_the_workers(
    seed: Terminal, svc, ledger_url: str, backoffice: BackOffice, client: httpx.AsyncClient, monkeypatch
) -> None:
    """The gateway died between deciding the return and making its credit: the customer is not
    left without it."""
    sale = await sold(seed, 5780)

    async def dies(*a: Any, **kw: Any) -> Any:
        raise ConnectionError("the gateway died here")

    with monkeypatch.context() as m:
        m.setattr(credits, "create", dies)
        with contextlib.suppress(ConnectionError):
            await seed.return_sale(sale, 1200, refund="CREDIT")
    await writer.drain(svc, ledger_url)

    async def available() -> int:
        return (await client.get("/v1/participants/CLI001/credits", headers=backoffice.headers)).json()["available"]

    assert await available() == 0
    assert await refunds.refund_once(svc, grace_s=0) == 1
    await writer.drain(svc, ledger_url)
    assert await refunds.refund_once(svc, grace_s=0) == 0  # made once, whoever runs it
    assert await available() == 1200


async def test_a_sale_redis_forgot_is_reversed_a_month_later_for_what_its_returns_left(
    seed: Terminal, svc, clock: Clock, ledger_url: str
) -> None:
    sale = await sold(seed, 5780)
    assert (await seed.return_sale(sale, 1200)).status_code == 201
    await writer.drain(svc, ledger_url)
    clock.advance(30 * DAY)
    await forget(svc, sale)
    reversed_ = await seed.cancel(sale, reason="pedido cancelado")
    assert reversed_.status_code == 200, reversed_.text
    assert (reversed_.json()["status"], reversed_.json()["amount"]) == ("REVERSED", 4580)
    assert await balance(seed) == LIMIT
    again = await seed.cancel(sale, reason="pedido cancelado")
    assert again.json() == reversed_.json() and again.headers["Idempotent-Replayed"] == "true"
    await writer.drain(svc, ledger_url)
    await forget(svc, sale)
    assert (await seed.cancel(sale)).json() == reversed_.json()  # a retry a month later answers the same
    assert await balance(seed) == LIMIT
    async with asyncpg.create_pool(ledger_url, min_size=1, max_size=1) as pool, pool.acquire() as conn:
        assert (await verify(svc, conn)).differences == []
