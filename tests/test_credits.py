"""The customer's current account at the checkout: credits of several types paying
one order, what the order shows, cancels and returns giving each part back to its credit,
which credits an order takes first, expiry, partial commits, retries, and fifty orders racing
over the same credits."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import httpx
import pytest

from gateway.auth.permissions import Permission
from gateway.holds import lifecycle, sweeper
from ledger.writer import writer
from tests.checkout import BackOffice, Clock, Terminal, assert_error, mint_proof

DAY = 24 * 3600


class Account:
    """The back office registering credits for a customer, and a checkout (or the web shop)
    paying orders with them."""

    def __init__(self, client: httpx.AsyncClient, office: BackOffice, terminal: Terminal, clock: Clock) -> None:
        self.client, self.office, self.terminal, self.clock = client, office, terminal, clock
        self.keys = 0

    def in_days(self, days: float) -> str:
        at = datetime.datetime.fromtimestamp(self.clock.now / 1000 + days * DAY, datetime.UTC)
        return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    async def credit(
        self, customer: str, reference: str, type_: str, amount: int, expires_in_days: float | None = None, **kw: Any
    ) -> httpx.Response:
        body: dict[str, Any] = {
            "reference": reference,
            "type": type_,
            "amount": amount,
            "origin": kw.pop("origin", {"channel": "STORE", "store": "LOJA01", "terminal": "PDV01"}),
            **kw,
        }
        if expires_in_days is not None:
            body["expires_at"] = self.in_days(expires_in_days)
        return await self.client.post(f"/v1/participants/{customer}/credits", json=body, headers=self.office.headers)

    async def registered(self, customer: str, reference: str, type_: str, amount: int, **kw: Any) -> dict[str, Any]:
        r = await self.credit(customer, reference, type_, amount, **kw)
        assert r.status_code == 201, r.text
        return r.json()

    async def credits(self, customer: str) -> dict[str, Any]:
        r = await self.client.get(f"/v1/participants/{customer}/credits", headers=self.terminal.headers)
        assert r.status_code == 200, r.text
        return r.json()

    async def remaining(self, customer: str) -> dict[str, int]:
        return {c["reference"]: c["remaining"] for c in (await self.credits(customer))["credits"]}

    async def hold(
        self, customer: str, amount: int, order: str, key: str | None = None, **extra: Any
    ) -> httpx.Response:
        self.keys += 1
        body = {"customer": customer, "amount": amount, "order": order, "channel": "STORE", "store": "LOJA01"}
        body.update(extra)
        headers = {**self.terminal.headers, "Idempotency-Key": key or f"credit-{order}-{self.keys}"}
        return await self.client.post("/v1/credit-holds", json=body, headers=headers)

    async def held(self, customer: str, amount: int, order: str, **extra: Any) -> dict[str, Any]:
        r = await self.hold(customer, amount, order, **extra)
        assert r.status_code == 201, r.text
        return r.json()

    async def commit(self, hold_id: str, coupon: str = "NF-1", amount: int | None = None) -> httpx.Response:
        body: dict[str, Any] = {"coupon": coupon}
        if amount is not None:
            body["amount"] = amount
        return await self.client.post(f"/v1/credit-holds/{hold_id}/commit", json=body, headers=self.terminal.headers)

    async def cancel(self, hold_id: str, reason: str | None = None) -> httpx.Response:
        body = {} if reason is None else {"reason": reason}
        return await self.client.post(f"/v1/credit-holds/{hold_id}/cancel", json=body, headers=self.terminal.headers)

    async def return_part(self, hold_id: str, amount: int, key: str | None = None, **extra: Any) -> httpx.Response:
        """A devolução of part of a committed order paid with credits, at a store."""
        self.keys += 1
        body = {"amount": amount, "store": "LOJA01", "terminal": "PDV01", **extra}
        headers = {**self.terminal.headers, "Idempotency-Key": key or f"return-{hold_id}-{self.keys}"}
        return await self.client.post(f"/v1/credit-holds/{hold_id}/returns", json=body, headers=headers)

    async def hold_view(self, hold_id: str) -> dict[str, Any]:
        r = await self.client.get(f"/v1/credit-holds/{hold_id}", headers=self.terminal.headers)
        assert r.status_code == 200, r.text
        return r.json()

    async def order(self, order: str) -> httpx.Response:
        return await self.client.get(f"/v1/orders/{order}", headers=self.terminal.headers)


@pytest.fixture
async def account(client, backoffice: BackOffice, seed: Terminal, clock: Clock) -> Account:
    return Account(client, backoffice, seed, clock)


async def three_credits(account: Account, customer: str = "CLI001") -> None:
    """A return (R$ 15,00, 30 days), a cashback (R$ 5,00, 10 days) and a manual credit (R$ 20,00)."""
    await account.registered(customer, "DEV-0001", "DEVOLUCAO", 1500, expires_in_days=30)
    await account.registered(customer, "CB-0001", "CASHBACK", 500, expires_in_days=10)
    await account.registered(customer, "MAN-0001", "MANUAL", 2000)


def used(body: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(c["reference"], c["type"], c["amount"]) for c in body["credits"]]


# --- an order paid with three credits ----------------------------------------------------------
async def test_an_order_paid_with_three_credits_of_different_types_shows_each_reference_and_amount(
    account: Account, seed: Terminal, svc, ledger_url
) -> None:
    await three_credits(account)
    assert (await account.credits("CLI001"))["available"] == 4000

    # order PED-100, R$ 30,00 from credits (the cashback expires first, then the return; the
    # manual credit, without expiry, pays the rest) and R$ 5,78 on the convênio
    held = await account.held("CLI001", 3000, "PED-100", terminal="PDV01")
    assert held["status"] == "PENDING" and held["order"] == "PED-100"
    assert used(held) == [("CB-0001", "CASHBACK", 500), ("DEV-0001", "DEVOLUCAO", 1500), ("MAN-0001", "MANUAL", 1000)]
    assert held["available"] == 1000
    empenho = (await seed.hold(578, order="PED-100")).json()
    assert (await seed.commit(empenho["id"], coupon="NF-100")).status_code == 200

    committed = await account.commit(held["id"], coupon="NF-100")
    assert committed.status_code == 200, committed.text
    assert committed.json()["status"] == "COMMITTED" and committed.json()["amount"] == 3000
    assert used(committed.json()) == used(held)
    assert await account.remaining("CLI001") == {"DEV-0001": 0, "CB-0001": 0, "MAN-0001": 1000}
    listing = await account.credits("CLI001")
    assert [c["status"] for c in listing["credits"]] == ["USED", "USED", "ACTIVE"]
    assert listing["available"] == 1000

    await writer.drain(svc, ledger_url)
    r = await account.order("PED-100")
    assert r.status_code == 200, r.text
    order = r.json()
    assert order["order"] == "PED-100"
    assert [(c["reference"], c["type"], c["amount"], c["status"]) for c in order["credits"]] == [
        ("CB-0001", "CASHBACK", 500, "COMMITTED"),
        ("DEV-0001", "DEVOLUCAO", 1500, "COMMITTED"),
        ("MAN-0001", "MANUAL", 1000, "COMMITTED"),
    ]
    assert {c["hold"] for c in order["credits"]} == {held["id"]}
    assert order["empenhos"] == [
        {
            "id": empenho["id"],
            "convenio": "EMP001",
            "participant": "CLI001",
            "amount": 578,
            "status": "COMMITTED",
            "committed_amount": 578,
            "returned": 0,
        }
    ]


async def test_an_order_shows_its_credits_at_once_and_its_empenhos_once_stored(
    account: Account, seed: Terminal, svc, ledger_url
) -> None:
    await three_credits(account)
    held = await account.held("CLI001", 700, "PED-101")
    empenho = (await seed.hold(1000, order="PED-101")).json()
    order = (await account.order("PED-101")).json()
    assert [(c["reference"], c["amount"], c["status"]) for c in order["credits"]] == [
        ("CB-0001", 500, "PENDING"),
        ("DEV-0001", 200, "PENDING"),
    ]
    assert order["empenhos"] == []  # the ledger has not stored the empenho yet
    await writer.drain(svc, ledger_url)
    order = (await account.order("PED-101")).json()
    assert [(e["id"], e["status"]) for e in order["empenhos"]] == [(empenho["id"], "PENDING")]
    assert (await account.cancel(held["id"])).status_code == 200
    assert (await seed.commit(empenho["id"])).status_code == 200
    order = (await account.order("PED-101")).json()  # the live status, before the ledger stores it
    assert {c["status"] for c in order["credits"]} == {"CANCELLED"}
    assert [(e["status"], e["committed_amount"]) for e in order["empenhos"]] == [("COMMITTED", 1000)]


async def test_an_order_nobody_paid_is_unknown(account: Account) -> None:
    assert_error(await account.order("PED-NADA"), 404, "UNKNOWN_ORDER")
    assert_error(await account.order("PED 1"), 422, "INVALID_REQUEST", "order")


# --- giving back -------------------------------------------------------------------------------
async def test_cancelling_a_pending_hold_gives_each_part_back_to_its_credit(account: Account) -> None:
    await three_credits(account)
    held = await account.held("CLI001", 3000, "PED-200")
    assert await account.remaining("CLI001") == {"DEV-0001": 0, "CB-0001": 0, "MAN-0001": 1000}

    r = await account.cancel(held["id"], reason="cliente desistiu")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "CANCELLED" and r.json()["amount"] == 3000
    assert used(r.json()) == used(held)
    assert await account.remaining("CLI001") == {"DEV-0001": 1500, "CB-0001": 500, "MAN-0001": 2000}
    again = await account.cancel(held["id"])
    assert again.json() == r.json() and again.headers["Idempotent-Replayed"] == "true"
    late = await account.commit(held["id"])
    assert assert_error(late, 409, "CREDIT_HOLD_NOT_PENDING")["status"] == "CANCELLED"
    assert await account.remaining("CLI001") == {"DEV-0001": 1500, "CB-0001": 500, "MAN-0001": 2000}


async def test_a_returned_order_gives_each_committed_part_back_to_the_credit_it_came_from(
    account: Account, svc, ledger_url
) -> None:
    await three_credits(account)
    held = await account.held("CLI001", 3000, "PED-300")
    assert (await account.commit(held["id"], coupon="NF-300")).status_code == 200
    r = await account.cancel(held["id"], reason="devolução do pedido")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "REVERSED" and r.json()["amount"] == 3000
    assert used(r.json()) == [
        ("CB-0001", "CASHBACK", 500),
        ("DEV-0001", "DEVOLUCAO", 1500),
        ("MAN-0001", "MANUAL", 1000),
    ]
    assert await account.remaining("CLI001") == {"DEV-0001": 1500, "CB-0001": 500, "MAN-0001": 2000}
    assert (await account.cancel(held["id"])).json() == r.json()

    await writer.drain(svc, ledger_url)
    view = (await account.client.get(f"/v1/credit-holds/{held['id']}", headers=account.terminal.headers)).json()
    assert [h["status"] for h in view["history"]] == ["PENDING", "COMMITTED", "REVERSED"]
    order = (await account.order("PED-300")).json()
    assert {c["status"] for c in order["credits"]} == {"REVERSED"}


async def test_a_partial_commit_releases_the_rest_last_picked_first(account: Account) -> None:
    await three_credits(account)
    held = await account.held("CLI001", 3000, "PED-400")
    # the order shipped R$ 23,00 of R$ 30,00: R$ 7,00 go back, the manual credit's R$ 10,00 part first
    r = await account.commit(held["id"], coupon="NF-400", amount=2300)
    assert r.status_code == 200, r.text
    assert used(r.json()) == [
        ("CB-0001", "CASHBACK", 500),
        ("DEV-0001", "DEVOLUCAO", 1500),
        ("MAN-0001", "MANUAL", 300),
    ]
    assert await account.remaining("CLI001") == {"DEV-0001": 0, "CB-0001": 0, "MAN-0001": 1700}

    # releasing more than the last part reaches the one before it
    await account.registered("CLI002", "DEV-9", "DEVOLUCAO", 1000, expires_in_days=5)
    await account.registered("CLI002", "MAN-9", "MANUAL", 1000)
    held = await account.held("CLI002", 1800, "PED-401")
    r = await account.commit(held["id"], coupon="NF-401", amount=700)
    assert used(r.json()) == [("DEV-9", "DEVOLUCAO", 700)]
    assert await account.remaining("CLI002") == {"DEV-9": 300, "MAN-9": 1000}
    view = (await account.client.get(f"/v1/credit-holds/{held['id']}", headers=account.terminal.headers)).json()
    assert [(p["reference"], p["held"], p["committed"]) for p in view["parts"]] == [
        ("DEV-9", 1000, 700),
        ("MAN-9", 800, 0),
    ]
    # the return gives back what was committed, no more
    assert (await account.cancel(held["id"])).json()["amount"] == 700
    assert await account.remaining("CLI002") == {"DEV-9": 1000, "MAN-9": 1000}


# --- which credits, and expiry -----------------------------------------------------------------
async def test_credits_expiring_first_are_taken_first_then_the_oldest(account: Account) -> None:
    await account.registered("CLI003", "A-OLD", "MANUAL", 1000)
    await account.registered("CLI003", "B-20D", "CASHBACK", 1000, expires_in_days=20)
    await account.registered("CLI003", "C-NEW", "RUPTURA", 1000)
    await account.registered("CLI003", "D-5D", "DEVOLUCAO", 1000, expires_in_days=5)
    await account.registered("CLI003", "E-20D", "CANCELAMENTO", 1000, expires_in_days=20)  # same day as B

    first = await account.held("CLI003", 1500, "PED-500")
    assert [(ref, amount) for ref, _, amount in used(first)] == [("D-5D", 1000), ("B-20D", 500)]
    second = await account.held("CLI003", 3000, "PED-501")
    assert [(ref, amount) for ref, _, amount in used(second)] == [
        ("B-20D", 500),
        ("E-20D", 1000),
        ("A-OLD", 1000),
        ("C-NEW", 500),
    ]


async def test_an_expired_credit_is_never_used(account: Account, clock: Clock) -> None:
    await account.registered("CLI004", "CB-1H", "CASHBACK", 800, expires_in_days=1 / 24)
    await account.registered("CLI004", "MAN-1", "MANUAL", 500)
    clock.advance(3600)  # the cashback's last instant has passed
    listing = await account.credits("CLI004")
    assert [(c["reference"], c["status"], c["remaining"]) for c in listing["credits"]] == [
        ("CB-1H", "EXPIRED", 800),
        ("MAN-1", "ACTIVE", 500),
    ]
    assert listing["available"] == 500
    declined = assert_error(await account.hold("CLI004", 600, "PED-600"), 422, "INSUFFICIENT_CREDIT")
    assert declined["available"] == 500 and declined["protocol"]
    held = await account.held("CLI004", 500, "PED-601")
    assert used(held) == [("MAN-1", "MANUAL", 500)]
    assert await account.remaining("CLI004") == {"CB-1H": 800, "MAN-1": 0}


async def test_a_credit_expiring_while_held_still_pays_the_order_it_was_held_for(
    account: Account, clock: Clock, svc
) -> None:
    await account.registered("CLI005", "CB-10M", "CASHBACK", 800, expires_in_days=10 / (24 * 60))
    held = await account.held("CLI005", 800, "PED-700")
    clock.advance(11 * 60)
    r = await account.commit(held["id"], coupon="NF-700")
    assert r.status_code == 200, r.text
    assert used(r.json()) == [("CB-10M", "CASHBACK", 800)]


# --- registering credits -----------------------------------------------------------------------
async def test_a_credit_is_registered_once_under_its_reference(account: Account) -> None:
    first = await account.credit("CLI006", "DEV-77", "DEVOLUCAO", 1200, origin={"channel": "WEB", "order": "WEB-77"})
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["customer"], body["reference"], body["type"], body["amount"]) == (
        "CLI006",
        "DEV-77",
        "DEVOLUCAO",
        1200,
    )
    assert body["origin"] == {"channel": "WEB", "order": "WEB-77"}
    again = await account.credit("CLI006", "DEV-77", "DEVOLUCAO", 1200, origin={"channel": "WEB", "order": "WEB-77"})
    assert again.status_code == 201 and again.json() == body
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await account.credit("CLI006", "DEV-77", "DEVOLUCAO", 1300, origin={"channel": "WEB", "order": "WEB-77"})
    assert_error(other, 409, "CREDIT_REFERENCE_EXISTS")
    # the same reference is another customer's own
    assert (await account.credit("CLI007", "DEV-77", "DEVOLUCAO", 1300, origin={"channel": "WEB"})).status_code == 201
    # the retailer's own type
    assert (
        await account.credit("CLI006", "BRINDE-1", "VALE_BRINDE", 100, origin={"channel": "WEB"})
    ).status_code == 201
    assert [c["reference"] for c in (await account.credits("CLI006"))["credits"]] == ["DEV-77", "BRINDE-1"]
    assert (await account.credits("CLI006"))["available"] == 1300


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"origin": {"channel": "STORE"}}, "origin.store"),
        ({"origin": {"channel": "PHONE"}}, "origin.channel"),
        ({"type": "devolucao"}, "type"),
        ({"amount": 0}, "amount"),
        ({"amount": 5.5}, "amount"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2099-01-01T00:00:00"}, "expires_at"),
        ({"expires_at": "2300-01-01T00:00:00Z"}, "expires_at"),
        ({"reference": "DEV 1"}, "reference"),
    ],
)
async def test_a_bad_credit_is_422_naming_the_field(account: Account, changes: dict[str, Any], field: str) -> None:
    body = {"reference": "DEV-1", "type": "DEVOLUCAO", "amount": 100, "origin": {"channel": "WEB"}, **changes}
    r = await account.client.post("/v1/participants/CLI008/credits", json=body, headers=account.office.headers)
    assert_error(r, 422, "INVALID_REQUEST", field)
    assert (await account.credits("CLI008"))["credits"] == []


# --- retries -----------------------------------------------------------------------------------
async def test_retries_of_a_credit_hold_replay_and_another_body_is_a_conflict(account: Account) -> None:
    await three_credits(account)
    first = await account.hold("CLI001", 700, "PED-800", key="PDV01-800")
    again = await account.hold("CLI001", 700, "PED-800", key="PDV01-800")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert (await account.credits("CLI001"))["available"] == 4000 - 700
    assert_error(await account.hold("CLI001", 800, "PED-800", key="PDV01-800"), 409, "IDEMPOTENCY_CONFLICT")
    # an Idempotency-Key names one request, an empenho or a credit hold
    sale = account.terminal.sale(100, await account.terminal.proof())
    assert_error(await account.terminal.hold(100, body=sale, idempotency_key="PDV01-800"), 409, "IDEMPOTENCY_CONFLICT")

    hold_id = first.json()["id"]
    done = await account.commit(hold_id, coupon="NF-800")
    retried = await account.commit(hold_id, coupon="NF-800")
    assert done.status_code == retried.status_code == 200
    assert retried.json() == done.json() and retried.headers["Idempotent-Replayed"] == "true"
    assert_error(await account.commit(hold_id, coupon="NF-OTHER"), 409, "CREDIT_COMMIT_CONFLICT")
    assert (await account.credits("CLI001"))["available"] == 4000 - 700

    declined = await account.hold("CLI001", 99_999, "PED-801", key="PDV01-801")
    replayed = await account.hold("CLI001", 99_999, "PED-801", key="PDV01-801")
    assert_error(declined, 422, "INSUFFICIENT_CREDIT")
    assert replayed.json() == declined.json() and replayed.headers["Idempotent-Replayed"] == "true"


async def test_refused_commits_and_unknown_holds(account: Account) -> None:
    await three_credits(account)
    held = await account.held("CLI001", 700, "PED-900")
    assert assert_error(await account.commit(held["id"], amount=701), 422, "CREDIT_COMMIT_EXCEEDS_HOLD")
    assert (await account.credits("CLI001"))["available"] == 3300
    near = held["id"][:-1] + ("1" if held["id"].endswith("0") else "0")  # one character off, never the same
    for bad in ("C1-01ARZ3NDEKTSV4RRFFQ69G5FAV", "nonsense", "C999-01ARZ3NDEKTSV4RRFFQ69G5FAV", near):
        for r in (
            await account.commit(bad),
            await account.cancel(bad),
            await account.client.get(f"/v1/credit-holds/{bad}", headers=account.terminal.headers),
        ):
            assert_error(r, 404, "UNKNOWN_CREDIT_HOLD")


async def test_a_store_hold_needs_its_store(account: Account) -> None:
    await three_credits(account)
    r = await account.client.post(
        "/v1/credit-holds",
        json={"customer": "CLI001", "amount": 100, "order": "PED-1", "channel": "STORE"},
        headers={**account.terminal.headers, "Idempotency-Key": "no-store"},
    )
    assert_error(r, 422, "INVALID_REQUEST", "store")
    web = await account.held("CLI001", 100, "WEB-1", channel="WEB", store=None)
    assert web["status"] == "PENDING"


# --- expiry of a hold --------------------------------------------------------------------------
async def test_a_hold_nobody_commits_expires_and_gives_the_credits_back(account: Account, clock: Clock, svc) -> None:
    await three_credits(account)
    held = await account.held("CLI001", 3000, "PED-1000")
    clock.advance(svc.settings.hold_ttl_s - 1)
    assert await sweeper.sweep(svc, lifecycle.CREDIT_HOLD) == 0
    assert (await account.credits("CLI001"))["available"] == 1000
    clock.advance(2)
    assert await sweeper.sweep(svc, lifecycle.CREDIT_HOLD) == 1
    assert await account.remaining("CLI001") == {"DEV-0001": 1500, "CB-0001": 500, "MAN-0001": 2000}
    assert assert_error(await account.commit(held["id"]), 409, "CREDIT_HOLD_NOT_PENDING")["status"] == "EXPIRED"
    assert_error(await account.cancel(held["id"]), 409, "CREDIT_HOLD_NOT_PENDING")


async def test_a_commit_after_the_deadline_expires_the_hold_before_the_sweep(
    account: Account, clock: Clock, svc
) -> None:
    await three_credits(account)
    held = await account.held("CLI001", 3000, "PED-1001")
    clock.advance(svc.settings.hold_ttl_s + 1)
    assert assert_error(await account.commit(held["id"]), 409, "CREDIT_HOLD_NOT_PENDING")["status"] == "EXPIRED"
    assert (await account.credits("CLI001"))["available"] == 4000
    assert await sweeper.sweep(svc, lifecycle.CREDIT_HOLD) == 0  # nothing left to give back twice


# --- fifty orders at once ----------------------------------------------------------------------
async def test_fifty_simultaneous_orders_over_the_same_credits_never_spend_a_centavo_twice(
    account: Account, svc, ledger_url, ledger
) -> None:
    # R$ 200,00 in three credits; fifty orders of R$ 7,00 race for them: 28 fit, R$ 4,00 is left
    await account.registered("CLI010", "DEV-A", "DEVOLUCAO", 10000, expires_in_days=30)
    await account.registered("CLI010", "CB-B", "CASHBACK", 6000, expires_in_days=3)
    await account.registered("CLI010", "MAN-C", "MANUAL", 4000)

    answers = await asyncio.gather(*(account.hold("CLI010", 700, f"PED-R{i:02d}") for i in range(50)))
    approved = [a.json() for a in answers if a.status_code == 201]
    declined = [a for a in answers if a.status_code != 201]
    assert len(approved) == 20000 // 700
    assert {assert_error(a, 422, "INSUFFICIENT_CREDIT")["available"] for a in declined} <= set(range(700))
    assert sum(c["amount"] for h in approved for c in h["credits"]) == 28 * 700
    assert sum((await account.remaining("CLI010")).values()) == 20000 - 28 * 700

    # half are committed (each terminal retries once), the rest cancelled, all at once
    to_commit, to_cancel = approved[:14], approved[14:]
    results = await asyncio.gather(
        *(account.commit(h["id"], coupon=f"NF-{h['order']}") for h in to_commit),
        *(account.cancel(h["id"]) for h in to_cancel),
        *(account.commit(h["id"], coupon=f"NF-{h['order']}") for h in to_commit),
    )
    assert all(r.status_code == 200 for r in results), [r.text for r in results if r.status_code != 200]
    remaining = await account.remaining("CLI010")
    assert sum(remaining.values()) == 20000 - 14 * 700
    assert all(0 <= v for v in remaining.values())

    # the ledger agrees to the centavo: every credit's remaining, and debits = what was committed
    await writer.drain(svc, ledger_url)
    async with ledger.acquire() as conn:
        stored = {r["reference"]: r["remaining"] for r in await conn.fetch("SELECT reference, remaining FROM credits")}
        debits = await conn.fetchval("SELECT sum(amount) FROM credit_movements WHERE kind = 'DEBIT'")
        pending = await conn.fetchval("SELECT count(*) FROM credit_holds WHERE status = 'PENDING'")
    assert stored == remaining
    assert (debits, pending) == (-14 * 700, 0)


# --- the ledger --------------------------------------------------------------------------------
async def test_the_ledger_keeps_credits_holds_parts_and_each_decision(
    account: Account, svc, ledger_url, ledger
) -> None:
    await three_credits(account)
    held = await account.held("CLI001", 2500, "PED-1100")
    committed = (await account.commit(held["id"], coupon="NF-1100", amount=2000)).json()
    declined = assert_error(await account.hold("CLI001", 10**6, "PED-1101"), 422, "INSUFFICIENT_CREDIT")
    await writer.drain(svc, ledger_url)

    async with ledger.acquire() as conn:
        hold = await conn.fetchrow("SELECT * FROM credit_holds WHERE id = $1", held["id"])
        parts = await conn.fetch(
            """SELECT c.reference, p.held, p.committed FROM credit_hold_parts p JOIN credits c ON c.id = p.credit_id
               WHERE p.hold_id = $1 ORDER BY p.seq""",
            held["id"],
        )
    assert (hold["status"], hold["amount"], hold["committed_amount"], hold["order_ref"]) == (
        "COMMITTED",
        2500,
        2000,
        "PED-1100",
    )
    assert [tuple(p) for p in parts] == [("CB-0001", 500, 500), ("DEV-0001", 1500, 1500), ("MAN-0001", 500, 0)]

    d = (await account.client.get(f"/v1/protocols/{held['protocol']}", headers=account.terminal.headers)).json()
    assert (d["kind"], d["outcome"], d["http_status"], d["participant"]) == ("credit.hold", "APPROVED", 201, "CLI001")
    assert d["answer"] == held
    d = (await account.client.get(f"/v1/protocols/{committed['protocol']}", headers=account.terminal.headers)).json()
    assert (d["kind"], d["answer"]) == ("credit.commit", committed)
    d = (await account.client.get(f"/v1/protocols/{declined['protocol']}", headers=account.terminal.headers)).json()
    assert (d["kind"], d["outcome"], d["error"]) == ("credit.hold", "DECLINED", "INSUFFICIENT_CREDIT")


# --- who may do what ---------------------------------------------------------------------------
async def test_permissions_of_the_current_account(account: Account, backoffice: BackOffice) -> None:
    client = account.client

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    credits_key = await backoffice.key(Permission.CREDITS)
    terminal_key = await backoffice.key(Permission.EMPENHO)
    cancel_key = await backoffice.key(Permission.EMPENHO_CANCEL)
    reader_key = await backoffice.key(Permission.SALES_READ)
    limit_key = await backoffice.key(Permission.LIMIT_QUERY)
    body = {"reference": "DEV-P", "type": "DEVOLUCAO", "amount": 1000, "origin": {"channel": "WEB"}}

    # 9010 registers credits; a terminal's 3185 does not
    assert_error(
        await client.post("/v1/participants/CLI020/credits", json=body, headers=bearer(terminal_key)), 403, "FORBIDDEN"
    )
    assert_error(await client.post("/v1/participants/CLI020/credits", json=body), 401, "UNAUTHORIZED")
    r = await client.post("/v1/participants/CLI020/credits", json=body, headers=bearer(credits_key))
    assert r.status_code == 201, r.text

    # 3185 holds and commits, 3186 cancels; 9010 does neither
    hold = {"customer": "CLI020", "amount": 300, "order": "PED-P", "channel": "WEB"}
    r = await client.post("/v1/credit-holds", json=hold, headers={**bearer(credits_key), "Idempotency-Key": "p1"})
    assert_error(r, 403, "FORBIDDEN")
    r = await client.post("/v1/credit-holds", json=hold, headers={**bearer(terminal_key), "Idempotency-Key": "p1"})
    assert r.status_code == 201, r.text
    hold_id = r.json()["id"]
    assert_error(
        await client.post(f"/v1/credit-holds/{hold_id}/cancel", headers=bearer(terminal_key)), 403, "FORBIDDEN"
    )
    r = await client.post(f"/v1/credit-holds/{hold_id}/commit", json={"coupon": "NF"}, headers=bearer(cancel_key))
    assert_error(r, 403, "FORBIDDEN")
    assert (await client.post(f"/v1/credit-holds/{hold_id}/cancel", headers=bearer(cancel_key))).status_code == 200

    # reading a customer's credits and an order: the terminal's codes, 1748, 9000 and 9010; not 3183
    for token in (terminal_key, cancel_key, reader_key, credits_key):
        assert (await client.get("/v1/participants/CLI020/credits", headers=bearer(token))).status_code == 200
        assert (await client.get("/v1/orders/PED-P", headers=bearer(token))).status_code == 200
    assert_error(await client.get("/v1/participants/CLI020/credits", headers=bearer(limit_key)), 403, "FORBIDDEN")
    assert_error(await client.get("/v1/orders/PED-P", headers=bearer(limit_key)), 403, "FORBIDDEN")


async def test_a_customer_code_is_checked_in_the_path(account: Account) -> None:
    assert_error(
        await account.client.get("/v1/participants/CLI 1/credits", headers=account.terminal.headers),
        422,
        "INVALID_REQUEST",
        "participant",
    )


async def test_a_hold_of_a_customer_without_credits_is_declined(account: Account, svc) -> None:
    declined = assert_error(await account.hold("NOBODY", 100, "PED-0"), 422, "INSUFFICIENT_CREDIT")
    assert declined["available"] == 0
    proof = await mint_proof(svc, "EMP001", "CLI001")  # the convênio is untouched by credit holds
    assert (await account.terminal.hold(100, proof=proof)).status_code == 201


# --- Redis lost: the ledger puts the credits back ------------------------------------------------
async def test_after_redis_lost_its_data_the_ledger_restores_credits_and_holds(
    account: Account, seed: Terminal, svc, ledger_url, ledger
) -> None:
    from ledger.ops import rebuild, verify

    await three_credits(account)
    waiting = await account.hold("CLI001", 700, "PED-1200", key="PDV01-1200")
    assert waiting.status_code == 201, waiting.text
    sold = await account.held("CLI001", 1000, "PED-1201")
    assert (await account.commit(sold["id"], coupon="NF-1201")).status_code == 200
    before = await account.credits("CLI001")
    await writer.drain(svc, ledger_url)
    async with ledger.acquire() as conn:
        assert await verify.credit_drift(svc, conn) == []
        # what `convenio rebuild --force` does: the registry, balances and empenhos, then credits
        done = await rebuild.rebuild(svc, conn, force=True)
        counts = done.counts
        assert counts["credits"] == 3 and counts["pending credit holds"] == 1 and counts["final credit holds"] == 1
        assert await verify.credit_drift(svc, conn) == []
        # and restoring twice changes nothing
        await rebuild.restore_credits(svc, conn)
        assert await verify.credit_drift(svc, conn) == []

    assert await account.credits("CLI001") == before
    retried = await account.hold("CLI001", 700, "PED-1200", key="PDV01-1200")
    assert retried.json() == waiting.json() and retried.headers["Idempotent-Replayed"] == "true"
    assert (await account.commit(waiting.json()["id"], coupon="NF-1200")).status_code == 200
    returned = await account.cancel(sold["id"])
    assert returned.json()["status"] == "REVERSED", returned.text
    assert (await account.credits("CLI001"))["available"] == 4000 - 700
    order = (await account.order("PED-1201")).json()
    assert {c["status"] for c in order["credits"]} == {"REVERSED"}
    await writer.drain(svc, ledger_url)
    async with ledger.acquire() as conn:
        assert await verify.credit_drift(svc, conn) == []
