"""Limit-change requests ("Solicitação de Alteração de Limite"), through the HTTP API
with real Redis and Postgres.

The store's credit desk asks for a new limit with a suggested amount ("Limite de Crédito
Sugerido"), a reason and, when it cannot wait, the urgent flag ("Emergencial"). The analyst (the
admin permission) approves it, possibly for another amount ("o limite será o cotado"), or
rejects it with a reason ("irá constar na aba de Histórico o motivo da Negação").
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.auth import apikeys
from gateway.auth.permissions import Permission
from gateway.platform.clock import rfc3339
from gateway.platform.services import Services
from gateway.registry import participants
from ledger.writer import writer
from tests.checkout import BackOffice, Clock, Terminal, assert_error

UNKNOWN = "L01ARZ3NDEKTSV4RRFFQ69G5FAV"  # looks like a request id, was never issued


def ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()


def who(token: str) -> str:
    return f"apikey:{apikeys.key_id(token)}"


class Desk:
    """Someone at the back office with an API key: asks, reads, decides."""

    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        self.client, self.token = client, token
        self.headers = {"Authorization": f"Bearer {token}"}
        self.who = who(token)

    async def ask(
        self, convenio: str, participant: str, suggested: int, reason: str, urgent: bool = False
    ) -> httpx.Response:
        return await self.client.post(
            f"/v1/convenios/{convenio}/participants/{participant}/limit-requests",
            json={"suggested_limit": suggested, "reason": reason, "urgent": urgent},
            headers=self.headers,
        )

    async def requests(self, convenio: str, participant: str, **params: Any) -> httpx.Response:
        return await self.client.get(
            f"/v1/convenios/{convenio}/participants/{participant}/limit-requests", params=params, headers=self.headers
        )

    async def request(self, request_id: str) -> httpx.Response:
        return await self.client.get(f"/v1/limit-requests/{request_id}", headers=self.headers)

    async def approve(self, request_id: str, **body: Any) -> httpx.Response:
        return await self.client.post(f"/v1/limit-requests/{request_id}/approve", json=body, headers=self.headers)

    async def reject(self, request_id: str, reason: str) -> httpx.Response:
        return await self.client.post(
            f"/v1/limit-requests/{request_id}/reject", json={"reason": reason}, headers=self.headers
        )

    async def history(self, convenio: str, participant: str, **params: Any) -> list[dict[str, Any]]:
        r = await self.client.get(
            f"/v1/convenios/{convenio}/participants/{participant}/history", params=params, headers=self.headers
        )
        return ok(r)["history"]

    async def participant(self, convenio: str, participant: str) -> dict[str, Any]:
        r = await self.client.get(f"/v1/convenios/{convenio}/participants/{participant}", headers=self.headers)
        return ok(r)


@pytest.fixture
async def analyst(backoffice: BackOffice) -> Desk:
    """The credit analyst: every permission, the admin's 9000 among them."""
    return Desk(backoffice.client, backoffice.api_key)


@pytest.fixture
async def credit_desk(backoffice: BackOffice) -> Desk:
    """The store's credit desk: 603 (Convênios consultar) only."""
    return Desk(backoffice.client, await backoffice.key(Permission.CONVENIOS_READ))


async def test_one_request_approved_for_another_amount_and_one_rejected_both_in_the_history(
    svc: Services, clock: Clock, backoffice: BackOffice, analyst: Desk, credit_desk: Desk, ledger_url: str
) -> None:
    """ANA of EMP070 (total R$ 50.000,00) has R$ 10.000,00. The desk asks R$ 15.000,00 for a
    raise in salary; the analyst grants R$ 20.000,00 instead. The desk then asks, urgently,
    R$ 40.000,00 for the year-end shopping; the analyst refuses: "renda insuficiente". The
    history shows both, with who, when, before, after and why."""
    await backoffice.create_convenio("EMP070", 5_000_000)
    await backoffice.add_participant("EMP070", "ANA", limit=1_000_000)
    opened = rfc3339(clock.now)

    clock.advance(3600)
    asked = ok(await credit_desk.ask("EMP070", "ANA", 1_500_000, "aumento de salário"), 201)
    assert asked["id"].startswith("L") and len(asked["id"]) == 27
    assert asked == {
        "id": asked["id"],
        "convenio": "EMP070",
        "participant": "ANA",
        "status": "PENDING",
        "current_limit": 1_000_000,
        "suggested_limit": 1_500_000,
        "reason": "aumento de salário",
        "urgent": False,
        "requested_by": credit_desk.who,
        "requested_at": rfc3339(clock.now),
        "decided_by": None,
        "decided_at": None,
        "approved_limit": None,
        "decision_reason": None,
    }
    asked_at = asked["requested_at"]

    clock.advance(3600)
    approved = ok(await analyst.approve(asked["id"], limit=2_000_000, reason="cotado pela análise de crédito"))
    approved_at = rfc3339(clock.now)
    assert approved == {
        **asked,
        "status": "APPROVED",
        "decided_by": analyst.who,
        "decided_at": approved_at,
        "approved_limit": 2_000_000,
        "decision_reason": "cotado pela análise de crédito",
    }
    ana = await analyst.participant("EMP070", "ANA")
    assert (ana["limit"], ana["balance"]) == (2_000_000, 2_000_000)

    clock.advance(3600)
    urgent = ok(await credit_desk.ask("EMP070", "ANA", 4_000_000, "compras de fim de ano", urgent=True), 201)
    assert (urgent["current_limit"], urgent["urgent"]) == (2_000_000, True)
    clock.advance(3600)
    rejected = ok(await analyst.reject(urgent["id"], "renda insuficiente"))
    rejected_at = rfc3339(clock.now)
    assert (rejected["status"], rejected["decision_reason"], rejected["approved_limit"]) == (
        "REJECTED",
        "renda insuficiente",
        None,
    )
    assert (rejected["decided_by"], rejected["decided_at"]) == (analyst.who, rejected_at)
    assert (await analyst.participant("EMP070", "ANA"))["limit"] == 2_000_000  # a rejection changes nothing
    assert ok(await credit_desk.request(urgent["id"])) == rejected
    listed = ok(await credit_desk.requests("EMP070", "ANA"))
    assert listed == {"requests": [rejected, approved]}  # the urgent one first

    await writer.drain(svc, ledger_url)
    history = await credit_desk.history("EMP070", "ANA")
    rows = [
        (h["kind"], h["at"], h["by"], h["before"], h["after"], h["reason"], h.get("request"), h.get("request_status"))
        for h in history
    ]
    admin, desk, why = analyst.who, credit_desk.who, "cotado pela análise de crédito"
    assert rows == [
        ("REQUEST", rejected_at, admin, 2_000_000, None, "renda insuficiente", urgent["id"], "REJECTED"),
        ("REQUEST", urgent["requested_at"], desk, 2_000_000, None, "compras de fim de ano", urgent["id"], "PENDING"),
        # the change itself, from the registry's event, linked to the request it came from
        ("LIMIT", approved_at, admin, 1_000_000, 2_000_000, why, asked["id"], None),
        ("REQUEST", approved_at, admin, 1_000_000, 2_000_000, why, asked["id"], "APPROVED"),
        ("REQUEST", asked_at, desk, 1_000_000, None, "aumento de salário", asked["id"], "PENDING"),
        # the grant: ANA's creation
        ("STATUS", opened, admin, None, "ACTIVE", "", None, None),
        ("LIMIT", opened, admin, None, 1_000_000, "", None, None),
    ]
    requests = [h for h in history if h["kind"] == "REQUEST"]
    assert [(h["suggested"], h["urgent"]) for h in requests] == [
        (4_000_000, True),
        (4_000_000, True),
        (1_500_000, False),
        (1_500_000, False),
    ]


async def test_without_an_amount_the_suggested_limit_is_approved(
    backoffice: BackOffice, analyst: Desk, credit_desk: Desk
) -> None:
    """An empty approval grants what was suggested."""
    await backoffice.create_convenio("EMP071", 1_000_000)
    await backoffice.add_participant("EMP071", "BIA", limit=100_000)
    asked = ok(await credit_desk.ask("EMP071", "BIA", 250_000, "promoção"), 201)
    r = await analyst.client.post(f"/v1/limit-requests/{asked['id']}/approve", headers=analyst.headers)
    approved = ok(r)
    assert (approved["approved_limit"], approved["decision_reason"]) == (250_000, "")
    assert (await analyst.participant("EMP071", "BIA"))["limit"] == 250_000


async def test_a_request_is_decided_once(backoffice: BackOffice, analyst: Desk, credit_desk: Desk) -> None:
    """Approving or rejecting a decided request is 409 LIMIT_REQUEST_DECIDED, and changes nothing."""
    await backoffice.create_convenio("EMP072", 1_000_000)
    await backoffice.add_participant("EMP072", "CAIO", limit=100_000)
    first = ok(await credit_desk.ask("EMP072", "CAIO", 200_000, "novo cargo"), 201)
    second = ok(await credit_desk.ask("EMP072", "CAIO", 900_000, "viagem"), 201)
    ok(await analyst.approve(first["id"], limit=150_000))
    ok(await analyst.reject(second["id"], "sem histórico"))

    for r in (
        await analyst.approve(first["id"], limit=300_000),
        await analyst.reject(first["id"], "mudei de ideia"),
        await analyst.approve(second["id"]),
        await analyst.reject(second["id"], "de novo"),
    ):
        assert_error(r, 409, "LIMIT_REQUEST_DECIDED")
    assert (await analyst.participant("EMP072", "CAIO"))["limit"] == 150_000
    assert ok(await analyst.request(first["id"]))["approved_limit"] == 150_000
    assert ok(await analyst.request(second["id"]))["decision_reason"] == "sem histórico"


async def test_an_unknown_request_is_404(analyst: Desk, seed: Terminal) -> None:
    assert_error(await analyst.request(UNKNOWN), 404, "UNKNOWN_LIMIT_REQUEST")
    assert_error(await analyst.approve(UNKNOWN), 404, "UNKNOWN_LIMIT_REQUEST")
    assert_error(await analyst.reject(UNKNOWN, "não existe"), 404, "UNKNOWN_LIMIT_REQUEST")
    assert_error(await analyst.ask("EMP001", "CLI999", 100, "quem?"), 404, "UNKNOWN_PARTICIPANT")
    assert_error(await analyst.ask("EMP999", "CLI001", 100, "quem?"), 404, "UNKNOWN_CONVENIO")
    assert_error(await analyst.requests("EMP001", "CLI999"), 404, "UNKNOWN_PARTICIPANT")
    assert_error(await analyst.request("not-a-request"), 422, "INVALID_REQUEST", "request")


async def test_who_reads_the_registry_may_ask_but_only_the_admin_decides(
    seed: Terminal, backoffice: BackOffice, analyst: Desk, credit_desk: Desk
) -> None:
    """A 603 key asks, lists, reads and sees the history, but may not approve or reject; a
    terminal's limit-query key (3183) may not even ask."""
    asked = ok(await credit_desk.ask("EMP001", "CLI001", 20_000, "cliente antigo"), 201)
    ok(await credit_desk.requests("EMP001", "CLI001"))
    ok(await credit_desk.request(asked["id"]))
    await credit_desk.history("EMP001", "CLI001")
    assert_error(await credit_desk.approve(asked["id"], limit=20_000), 403, "FORBIDDEN")
    assert_error(await credit_desk.reject(asked["id"], "não posso"), 403, "FORBIDDEN")

    sales_desk = Desk(analyst.client, await backoffice.key(Permission.SALES_READ))  # 1748 may ask too
    ok(await sales_desk.ask("EMP001", "CLI001", 30_000, "segundo pedido"), 201)
    terminal = Desk(analyst.client, await backoffice.key(Permission.LIMIT_QUERY))
    assert_error(await terminal.ask("EMP001", "CLI001", 20_000, "eu mesmo"), 403, "FORBIDDEN")
    assert_error(await terminal.request(asked["id"]), 403, "FORBIDDEN")

    assert ok(await credit_desk.request(asked["id"]))["status"] == "PENDING"
    assert (await analyst.participant("EMP001", "CLI001"))["limit"] == 10_000


async def test_an_approval_past_the_convenio_total_is_refused_and_the_request_stays_pending(
    backoffice: BackOffice, analyst: Desk, credit_desk: Desk
) -> None:
    """EMP073 has R$ 30.000,00 shared out as R$ 10.000,00 + R$ 15.000,00: raising ANA to
    R$ 25.000,00 would pass the total. Refused, the request waits; R$ 15.000,00 fits."""
    await backoffice.create_convenio("EMP073", 3_000_000)
    await backoffice.add_participant("EMP073", "ANA", limit=1_000_000)
    await backoffice.add_participant("EMP073", "BIA", limit=1_500_000)
    asked = ok(await credit_desk.ask("EMP073", "ANA", 2_500_000, "gerente"), 201)

    err = assert_error(await analyst.approve(asked["id"]), 422, "LIMIT_ALLOCATION_EXCEEDED")
    assert err["unallocated"] == 500_000
    assert ok(await analyst.request(asked["id"]))["status"] == "PENDING"
    assert (await analyst.participant("EMP073", "ANA"))["limit"] == 1_000_000

    approved = ok(await analyst.approve(asked["id"], limit=1_500_000, reason="o que cabe no convênio"))
    assert (approved["status"], approved["approved_limit"]) == ("APPROVED", 1_500_000)
    assert (await analyst.participant("EMP073", "ANA"))["balance"] == 1_500_000


async def test_an_approval_interrupted_after_the_limit_is_set_is_finished_by_approving_again(
    svc: Services, backoffice: BackOffice, analyst: Desk, credit_desk: Desk, ledger_url: str, monkeypatch: Any
) -> None:
    """The gateway loses Postgres right after Redis took the new limit: the answer is 503 and
    the request still reads PENDING. It cannot be rejected any more (the limit may be set);
    approving again sets the same, absolute limit, moves no balance twice and finishes it."""
    await backoffice.create_convenio("EMP074", 5_000_000)
    await backoffice.add_participant("EMP074", "ANA", limit=1_000_000)
    asked = ok(await credit_desk.ask("EMP074", "ANA", 2_000_000, "promoção"), 201)

    real = participants.save_participant

    async def then_postgres_goes(*args: Any, **kwargs: Any) -> Any:
        await real(*args, **kwargs)
        raise ConnectionRefusedError("the ledger went away")

    monkeypatch.setattr(participants, "save_participant", then_postgres_goes)
    assert_error(await analyst.approve(asked["id"]), 503, "LEDGER_UNAVAILABLE")
    monkeypatch.undo()
    assert ok(await analyst.request(asked["id"]))["status"] == "PENDING"
    assert (await analyst.participant("EMP074", "ANA"))["balance"] == 2_000_000

    assert_error(await analyst.reject(asked["id"], "tarde demais"), 409, "LIMIT_REQUEST_DECIDED")
    approved = ok(await analyst.approve(asked["id"]))
    assert (approved["status"], approved["approved_limit"]) == ("APPROVED", 2_000_000)
    ana = await analyst.participant("EMP074", "ANA")
    assert (ana["limit"], ana["balance"]) == (2_000_000, 2_000_000)

    await writer.drain(svc, ledger_url)
    changes = [(h["kind"], h["before"], h["after"]) for h in await analyst.history("EMP074", "ANA")]
    assert changes.count(("LIMIT", 1_000_000, 2_000_000)) == 1  # the repeat changed nothing
    assert [h for h in changes if h[0] == "LIMIT"] == [("LIMIT", 1_000_000, 2_000_000), ("LIMIT", None, 1_000_000)]
    assert ("REQUEST", 1_000_000, 2_000_000) in changes


async def test_open_requests_list_first_the_urgent_ones_first_a_page_at_a_time(
    clock: Clock, backoffice: BackOffice, analyst: Desk, credit_desk: Desk
) -> None:
    """Four requests, one already rejected: urgent open ones, newest first, then the other open
    one, then the decided one; ?status= filters; ?limit= pages with next_after."""
    await backoffice.create_convenio("EMP075", 5_000_000)
    await backoffice.add_participant("EMP075", "ANA", limit=100_000)
    ids = {}
    for name, urgent in (("a", False), ("b", True), ("c", False), ("d", True)):
        clock.advance(60)
        ids[name] = ok(await credit_desk.ask("EMP075", "ANA", 200_000, f"pedido {name}", urgent=urgent), 201)["id"]
    ok(await analyst.reject(ids["c"], "repetido"))

    def order(page: dict[str, Any]) -> list[str]:
        return [next(k for k, v in ids.items() if v == r["id"]) for r in page["requests"]]

    assert order(ok(await credit_desk.requests("EMP075", "ANA"))) == ["d", "b", "a", "c"]
    first = ok(await credit_desk.requests("EMP075", "ANA", limit=2))
    assert order(first) == ["d", "b"] and first["next_after"] == ids["b"]
    rest = ok(await credit_desk.requests("EMP075", "ANA", limit=2, after=first["next_after"]))
    assert order(rest) == ["a", "c"] and "next_after" not in rest
    assert order(ok(await credit_desk.requests("EMP075", "ANA", status="PENDING"))) == ["d", "b", "a"]
    assert order(ok(await credit_desk.requests("EMP075", "ANA", status="REJECTED"))) == ["c"]
    assert_error(await credit_desk.requests("EMP075", "ANA", status="OPEN"), 422, "INVALID_REQUEST", "status")
    assert_error(await credit_desk.requests("EMP075", "ANA", after="x"), 422, "INVALID_REQUEST", "after")


async def test_a_request_needs_a_reason_and_a_rejection_says_why(seed: Terminal, analyst: Desk) -> None:
    r = await analyst.client.post(
        "/v1/convenios/EMP001/participants/CLI001/limit-requests",
        json={"suggested_limit": 20_000},
        headers=analyst.headers,
    )
    assert_error(r, 422, "INVALID_REQUEST", "reason")
    assert_error(await analyst.ask("EMP001", "CLI001", -1, "negativo"), 422, "INVALID_REQUEST", "suggested_limit")
    asked = ok(await analyst.ask("EMP001", "CLI001", 20_000, "ok"), 201)
    assert_error(await analyst.reject(asked["id"], "   "), 422, "INVALID_REQUEST", "reason")
    r = await analyst.client.post(f"/v1/limit-requests/{asked['id']}/reject", json={}, headers=analyst.headers)
    assert_error(r, 422, "INVALID_REQUEST", "reason")
    assert ok(await analyst.request(asked["id"]))["status"] == "PENDING"
