"""The back office's day over HTTP: finding a convênio and its participants (CRM > Cadastros >
Convênios), reading the decision log of the stores' checkouts, and working through the limit
requests waiting for a decision, urgent ones first."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.auth import apikeys
from gateway.auth.permissions import Permission
from gateway.platform.clock import rfc3339
from gateway.platform.services import Services
from gateway.registry import convenios, limit_requests
from ledger.writer import writer
from tests.checkout import BackOffice, Clock, Terminal, assert_error, mint_proof


async def listed(office: BackOffice, path: str, **query: Any) -> dict[str, Any]:
    r = await office.client.get(path, params=query, headers=office.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def every_page(office: BackOffice, path: str, field: str, **query: Any) -> list[list[dict[str, Any]]]:
    """The pages of a listing, following next_after to the end."""
    pages, after = [], None
    while True:
        page = await listed(office, path, **query, **({"after": after} if after else {}))
        pages.append(page[field])
        after = page.get("next_after")
        if after is None:
            return pages


# --- CRM > Cadastros > Convênios -----------------------------------------------------------------
async def test_the_operator_finds_a_convenio_by_code_or_name_and_filters_by_status(
    seed: Terminal, backoffice: BackOffice, svc: Services, ledger_url: str, clock: Clock
) -> None:
    """EMPRESA CONVENIO 001 (EMP001) is found by "001" and by "empresa"; São João's by "sao joao"."""
    clock.advance(60)
    await backoffice.create_convenio("EMP002", total_limit=50_000)
    clock.advance(60)
    await backoffice.create_convenio("ACOUGUE", total_limit=20_000, name="Açougue São João")
    await writer.drain(svc, ledger_url)

    found = await listed(backoffice, "/v1/convenios", q="001")
    assert [c["code"] for c in found["convenios"]] == ["EMP001"]
    assert found["convenios"][0]["name"] == "EMPRESA CONVENIO 001"
    assert found["convenios"][0]["tolerance"] == 1_000
    assert "next_after" not in found
    found = await listed(backoffice, "/v1/convenios", q="empresa")
    assert [c["code"] for c in found["convenios"]] == ["EMP001", "EMP002"]
    found = await listed(backoffice, "/v1/convenios", q="SAO JOAO")
    assert [c["code"] for c in found["convenios"]] == ["ACOUGUE"]
    assert (await listed(backoffice, "/v1/convenios", q="100%"))["convenios"] == []  # % is no wildcard

    # the butcher's is blocked: the status filter finds it, and only it
    r = await backoffice.update_convenio("ACOUGUE", status="BLOCKED", reason="duplicata vencida")
    assert r.status_code == 200, r.text
    await writer.drain(svc, ledger_url)
    blocked = await listed(backoffice, "/v1/convenios", status="BLOCKED")
    assert [(c["code"], c["status"]) for c in blocked["convenios"]] == [("ACOUGUE", "BLOCKED")]
    active = await listed(backoffice, "/v1/convenios", status="ACTIVE")
    assert [c["code"] for c in active["convenios"]] == ["EMP001", "EMP002"]

    # one at a time, by code and newest first: every convênio once, in order
    pages = await every_page(backoffice, "/v1/convenios", "convenios", limit=1)
    assert [[c["code"] for c in page] for page in pages] == [["ACOUGUE"], ["EMP001"], ["EMP002"]]
    pages = await every_page(backoffice, "/v1/convenios", "convenios", limit=2, order="newest")
    assert [[c["code"] for c in page] for page in pages] == [["ACOUGUE", "EMP002"], ["EMP001"]]

    # the web page calls the same function the endpoint does
    page = await convenios.list_convenios(svc, q="empresa convênio", limit=10)
    assert [c.code for c in page.convenios] == ["EMP001"]

    assert_error(
        await backoffice.client.get("/v1/convenios", params={"q": "a\x01"}, headers=backoffice.headers),
        422,
        "INVALID_REQUEST",
        "q",
    )
    r = await backoffice.client.get("/v1/convenios", params={"q": "x" * 101}, headers=backoffice.headers)
    assert_error(r, 422, "INVALID_REQUEST", "q")


async def test_the_customer_cliente_001_is_found_in_both_convenios_by_name_or_code(
    seed: Terminal, backoffice: BackOffice, svc: Services, ledger_url: str
) -> None:
    """CLIENTE 001 takes part in EMP001 and EMP002: "cliente 0" finds both places, and CLIENTE 002."""
    await backoffice.create_convenio("EMP002", total_limit=50_000)
    await backoffice.add_participant("EMP002", "CLI001", limit=5_000, name="CLIENTE 001")
    await backoffice.add_participant("EMP002", "CLI002", limit=5_000, name="CLIENTE 002")
    await backoffice.add_participant("EMP002", "JOSE", limit=5_000, name="José Antônio")
    await writer.drain(svc, ledger_url)

    found = await listed(backoffice, "/v1/participants", q="cliente 0")
    assert [(p["code"], p["convenio"]) for p in found["participants"]] == [
        ("CLI001", "EMP001"),
        ("CLI001", "EMP002"),
        ("CLI002", "EMP002"),
    ]
    assert found["participants"][0]["limit"] == 10_000
    found = await listed(backoffice, "/v1/participants", q="cli001")
    assert [(p["code"], p["convenio"]) for p in found["participants"]] == [("CLI001", "EMP001"), ("CLI001", "EMP002")]
    found = await listed(backoffice, "/v1/participants", q="jose antonio")
    assert [p["name"] for p in found["participants"]] == ["José Antônio"]
    found = await listed(backoffice, "/v1/participants", q="cliente", convenio="EMP002")
    assert [p["code"] for p in found["participants"]] == ["CLI001", "CLI002"]

    # blocked in EMP002 only
    r = await backoffice.update_participant("EMP002", "CLI001", status="BLOCKED", reason="pedido da empresa")
    assert r.status_code == 200, r.text
    await writer.drain(svc, ledger_url)
    found = await listed(backoffice, "/v1/participants", status="BLOCKED")
    assert [(p["code"], p["convenio"]) for p in found["participants"]] == [("CLI001", "EMP002")]

    # page by page, every place once
    pages = await every_page(backoffice, "/v1/participants", "participants", q="cliente 0", limit=2)
    assert [[(p["code"], p["convenio"]) for p in page] for page in pages] == [
        [("CLI001", "EMP001"), ("CLI001", "EMP002")],
        [("CLI002", "EMP002")],
    ]

    # a hold the ledger has not seen yet: the record shown is Redis's, live
    held = await seed.hold(2_500, proof=await mint_proof(svc, "EMP001", "CLI001"))
    assert held.status_code == 201, held.text
    found = await listed(backoffice, "/v1/participants", q="CLI001", convenio="EMP001")
    assert [p["reserved"] for p in found["participants"]] == [2_500]

    # by CPF: the search that keeps the document out of the URL is still there
    r = await backoffice.client.post(
        "/v1/participants/search", json={"document": "529.982.247-25"}, headers=backoffice.headers
    )
    assert r.status_code == 200, r.text
    assert_error(
        await backoffice.client.get("/v1/participants", params={"convenio": "EMP404"}, headers=backoffice.headers),
        404,
        "UNKNOWN_CONVENIO",
    )
    r = await backoffice.client.get("/v1/participants", params={"after": "CLI001"}, headers=backoffice.headers)
    assert_error(r, 422, "INVALID_REQUEST", "after")


# --- the decision log ------------------------------------------------------------------------------
async def test_the_decision_log_of_two_stores_filtered_by_store_terminal_kind_outcome_and_time(
    seed: Terminal, backoffice: BackOffice, svc: Services, ledger_url: str, clock: Clock
) -> None:
    """CLIENTE 001 buys at LOJA01 (PDV01), an hour later at LOJA02 (PDV02), an hour later is declined
    at LOJA01 for more than R$ 110,00: each filter finds what it names, newest first."""

    async def hold(amount: int, store: str, terminal: str) -> httpx.Response:
        return await seed.hold(amount, proof=await mint_proof(svc, "EMP001", "CLI001"), store=store, terminal=terminal)

    start = clock.now
    first = await hold(578, "LOJA01", "PDV01")
    clock.advance(3600)
    second = await hold(1_000, "LOJA02", "PDV02")
    clock.advance(3600)
    declined = await hold(20_000, "LOJA01", "PDV01")
    assert (first.status_code, second.status_code) == (201, 201)
    assert_error(declined, 422, "INSUFFICIENT_LIMIT")
    await writer.drain(svc, ledger_url)
    protocols = [first.json()["protocol"], second.json()["protocol"], declined.json()["error"]["protocol"]]

    holds = await listed(backoffice, "/v1/decisions", kind="empenho.hold")
    assert [d["protocol"] for d in holds["decisions"]] == protocols[::-1]  # newest first
    assert holds["decisions"][2]["request"]["amount"] == 578
    assert holds["decisions"][2]["answer"]["id"] == first.json()["id"]
    assert all("proof" not in d["request"] and "password" not in d["request"] for d in holds["decisions"])

    at_loja02 = await listed(backoffice, "/v1/decisions", store="LOJA02")
    assert [d["protocol"] for d in at_loja02["decisions"]] == [protocols[1]]
    at_pdv01 = await listed(backoffice, "/v1/decisions", store="LOJA01", terminal="PDV01")
    assert [d["protocol"] for d in at_pdv01["decisions"]] == [protocols[2], protocols[0]]
    declines = await listed(backoffice, "/v1/decisions", outcome="DECLINED", convenio="EMP001", participant="CLI001")
    assert [(d["protocol"], d["error"], d["http_status"]) for d in declines["decisions"]] == [
        (protocols[2], "INSUFFICIENT_LIMIT", 422)
    ]
    middle = await listed(
        backoffice,
        "/v1/decisions",
        kind="empenho.hold",
        **{"from": rfc3339(start + 1_800_000), "to": rfc3339(start + 5_400_000)},
    )
    assert [d["protocol"] for d in middle["decisions"]] == [protocols[1]]

    pages = await every_page(backoffice, "/v1/decisions", "decisions", kind="empenho.hold", limit=2)
    assert [[d["protocol"] for d in page] for page in pages] == [protocols[:0:-1], protocols[:1]]

    # a key scoped to LOJA02 reads LOJA02's decisions only
    token, _ = await apikeys.create(svc, frozenset({Permission.CONVENIOS_READ}), name="gerente LOJA02", store="LOJA02")
    scoped = {"Authorization": f"Bearer {token}"}
    r = await backoffice.client.get("/v1/decisions", params={"kind": "empenho.hold"}, headers=scoped)
    assert [d["protocol"] for d in r.json()["decisions"]] == [protocols[1]]
    r = await backoffice.client.get("/v1/decisions", params={"store": "LOJA01"}, headers=scoped)
    assert_error(r, 403, "STORE_NOT_ALLOWED", "store")
    # a terminal's key looks a decision up by its protocol, but lists none
    assert_error(await backoffice.client.get("/v1/decisions", headers=seed.headers), 403, "FORBIDDEN")
    r = await backoffice.client.get("/v1/decisions", params={"kind": "Empenho Hold"}, headers=backoffice.headers)
    assert_error(r, 422, "INVALID_REQUEST", "kind")


# --- the limit requests' worklist ---------------------------------------------------------------------
async def test_the_worklist_puts_the_urgent_request_first_and_loses_the_decided_ones(
    seed: Terminal, backoffice: BackOffice, svc: Services, ledger_url: str, clock: Clock
) -> None:
    """CLIENTE 001 (EMP001) asks first, CLIENTE 002 (EMP002) next, then CLIENTE 001 again, urgently:
    the urgent one heads the worklist, then the oldest; once decided, requests leave it."""
    await backoffice.create_convenio("EMP002", total_limit=50_000)
    await backoffice.add_participant("EMP002", "CLI002", limit=5_000, name="CLIENTE 002")

    async def ask(convenio: str, participant: str, limit: int, urgent: bool = False) -> str:
        clock.advance(60)
        r = await backoffice.client.post(
            f"/v1/convenios/{convenio}/participants/{participant}/limit-requests",
            json={"suggested_limit": limit, "reason": "aumento de salário", "urgent": urgent},
            headers=backoffice.headers,
        )
        assert r.status_code == 201, r.text
        return r.json()["id"]

    oldest = await ask("EMP001", "CLI001", 15_000)
    other = await ask("EMP002", "CLI002", 8_000)
    urgent = await ask("EMP001", "CLI001", 12_000, urgent=True)

    work = await listed(backoffice, "/v1/limit-requests")
    assert [(r["id"], r["convenio"], r["participant"]) for r in work["requests"]] == [
        (urgent, "EMP001", "CLI001"),
        (oldest, "EMP001", "CLI001"),
        (other, "EMP002", "CLI002"),
    ]
    pages = await every_page(backoffice, "/v1/limit-requests", "requests", limit=2)
    assert [[r["id"] for r in page] for page in pages] == [[urgent, oldest], [other]]

    approved = await backoffice.client.post(f"/v1/limit-requests/{urgent}/approve", json={}, headers=backoffice.headers)
    assert approved.status_code == 200, approved.text
    rejected = await backoffice.client.post(
        f"/v1/limit-requests/{other}/reject", json={"reason": "renda insuficiente"}, headers=backoffice.headers
    )
    assert rejected.status_code == 200, rejected.text
    work = await listed(backoffice, "/v1/limit-requests", status="PENDING")
    assert [r["id"] for r in work["requests"]] == [oldest]
    done = await listed(backoffice, "/v1/limit-requests", status="APPROVED")
    assert [(r["id"], r["approved_limit"]) for r in done["requests"]] == [(urgent, 12_000)]

    page = await limit_requests.worklist(svc, "REJECTED")
    assert [r.id for r in page.requests] == [other]
    r = await backoffice.client.get("/v1/limit-requests", params={"status": "OPEN"}, headers=backoffice.headers)
    assert_error(r, 422, "INVALID_REQUEST", "status")


async def test_the_convenios_path_takes_a_get_and_a_post(backoffice: BackOffice) -> None:
    """Listing and creating share /v1/convenios: another method is 405, naming both."""
    r = await backoffice.client.delete("/v1/convenios", headers=backoffice.headers)
    assert_error(r, 405, "METHOD_NOT_ALLOWED")
    assert r.headers["allow"] == "GET, HEAD, POST"
