"""Every error an endpoint answers is one /openapi.json declares for it, with its status, and every
error the document declares for an endpoint is one a client can meet there.

Each test plays a part of the checkout or of the back office over HTTP and provokes the refusals
and declines of its endpoints the way a terminal or an operator meets them: an unknown convênio, a
blocked participant, a password locked after too many failures, a commit for more than was held,
a limit request decided twice, the ledger's database down... Every error answered on the way is
recorded (endpoint, status, code) and looked up in the document; at the end each endpoint's
declared errors must all have been met, except the few in UNPROVOKED, each with why it is not.
"""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from redis.asyncio import Redis
from starlette.routing import compile_path

from gateway.app import ENDPOINTS, OPERATIONS
from gateway.auth import apikeys
from gateway.auth.password_check import CHECK_STALE_MS
from gateway.auth.permissions import Permission
from gateway.orders import order_status
from gateway.platform.errors import ErrorCode
from gateway.platform.http.edge import MAX_BODY
from gateway.platform.http.endpoint import Endpoint
from gateway.platform.http.header_limit import MAX_HEADER_BYTES
from gateway.platform.postgres import LedgerDB
from gateway.platform.services import Services
from tests.checkout import VALID_PATH, BackOffice, Clock, Terminal, assert_error, mint_proof

E = ErrorCode
TABLE = ENDPOINTS + OPERATIONS
BY_NAME = {ep.name: ep for ep in TABLE}
_ROUTES = [(ep, compile_path(ep.path)[0]) for ep in TABLE]

#: what the edge answers for any endpoint (the first test provokes them on every one)
EDGE = {E.UNAUTHORIZED, E.FORBIDDEN, E.BODY_TOO_LARGE, E.HEADERS_TOO_LARGE, E.INVALID_REQUEST, E.SERVICE_UNAVAILABLE}
#: the ledger's database down (test_with_the_ledger_down_...)
LEDGER = {E.LEDGER_UNAVAILABLE}
#: which test provokes the other declared errors of which endpoints
FEATURES: dict[str, set[str]] = {
    "checkout": {
        "limit",
        "convenios_of",
        "password_verify",
        "empenho_hold",
        "empenho_get",
        "empenho_commit",
        "empenho_cancel",
        "empenho_return",
        "decision_get",
        "integration_key_set",
        "healthz",
        "readyz",
    },
    "registry": {
        "convenio_create",
        "convenio_get",
        "convenio_update",
        "participant_create",
        "participant_list",
        "participant_search",
        "convenio_list",
        "participant_find",
        "movement_list",
        "participant_get",
        "participant_update",
        "vehicle_list",
        "vehicle_save",
        "vehicle_delete",
        "participant_history",
        "convenio_history",
        "duplicata_list",
        "duplicata_get",
        "duplicata_settle",
    },
    "limit requests": {
        "limit_request_create",
        "limit_request_list",
        "limit_request_get",
        "limit_request_approve",
        "limit_request_reject",
        "limit_request_worklist",
    },
    "credits": {
        "credit_create",
        "credit_list",
        "credit_hold",
        "credit_hold_get",
        "credit_hold_commit",
        "credit_hold_cancel",
        "credit_hold_return",
        "order_get",
        "order_status_post",
        "order_status_params_get",
        "order_status_params_set",
        "credit_movements",
    },
    "stores": {"store_create", "store_list", "store_get", "store_update", "terminal_save"},
    "audit": {"audit_list"},
    "reconciliation": {
        "reconciliation_file_upload",
        "reconciliation_run",
        "reconciliation_record_list",
        "reconciliation_record_get",
        "reconciliation_record_undo",
        "cash_closing",
        "receivable_list",
        "receivable_get",
        "closing_post",
        "job_run_list",
    },
    "back-office lists": {"decision_list"},
}
#: declared, yet not provoked here: (endpoint, or "*" for every one) -> why
UNPROVOKED: dict[tuple[str, ErrorCode], str] = {
    ("*", E.INTERNAL_ERROR): "the catch-all of the edge: no input may produce a 500, so none here does",
    ("order_status_params_get", E.INVALID_REQUEST): "it reads nothing but the key; listed like every keyed "
    "operation's refusals",
    ("store_list", E.INVALID_REQUEST): "it reads nothing but the key, like order_status_params_get",
    ("receivable_list", E.INVALID_REQUEST): "it reads nothing but the key, like order_status_params_get",
}


def endpoint_of(method: str, path: str) -> Endpoint | None:
    """The endpoint a request reached, matched as the fast path matches it (table order)."""
    for ep, pattern in _ROUTES:
        if ep.method == method and pattern.match(path):
            return ep
    return None


def declared(spec: dict[str, Any], ep: Endpoint) -> set[tuple[int, str]]:
    """(status, code) of every error /openapi.json declares for the endpoint."""
    out = set()
    for status, response in spec["paths"][ep.path][ep.method.lower()]["responses"].items():
        if int(status) >= 400:
            schema = response["content"]["application/json"]["schema"]
            enum = schema["properties"]["error"]["allOf"][1]["properties"]["code"]["enum"]
            out |= {(int(status), code) for code in enum}
    return out


def unprovoked(ep: Endpoint, code: str) -> bool:
    return ("*", code) in UNPROVOKED or (ep.name, code) in UNPROVOKED


class Answers:
    """Every error the gateway answered through a client: (endpoint, status, code)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.seen: set[tuple[str, int, str]] = set()
        client.event_hooks["response"].append(self._record)

    async def _record(self, r: httpx.Response) -> None:
        if r.status_code < 400:
            return
        ep = endpoint_of(r.request.method, unquote(r.request.url.path))
        if ep is None:  # routing's own 404 and 405, no endpoint's
            return
        await r.aread()
        self.seen.add((ep.name, r.status_code, r.json()["error"]["code"]))

    def check(self, spec: dict[str, Any], endpoints: set[str], codes: set[ErrorCode] | None = None) -> None:
        """Every answer declared; and every declared error of `endpoints` met (only `codes`, when
        given; else all but the edge's and the ledger's), but for UNPROVOKED."""
        undeclared = sorted(s for s in self.seen if (s[1], s[2]) not in declared(spec, BY_NAME[s[0]]))
        assert not undeclared, f"answered, yet not declared in /openapi.json: {undeclared}"
        missing = []
        for name in sorted(endpoints):
            ep = BY_NAME[name]
            met = {(status, code) for n, status, code in self.seen if n == name}
            for status, code in sorted(declared(spec, ep) - met):
                wanted = code in codes if codes is not None else code not in EDGE | LEDGER
                if wanted and not unprovoked(ep, code):
                    missing.append(f"{name}: {status} {code}")
        assert not missing, "declared, yet never provoked:\n" + "\n".join(missing)


@pytest.fixture
async def spec(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200, r.text
    return r.json()


def url_of(ep: Endpoint, **values: str) -> str:
    return ep.path.format(**{**VALID_PATH, **values})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the table ---------------------------------------------------------------------------------
def test_every_endpoint_has_a_scenario_and_every_exception_a_reason(spec: dict[str, Any]) -> None:
    """Each endpoint belongs to one feature test below; each UNPROVOKED entry is still declared."""
    named = [name for names in FEATURES.values() for name in names]
    assert sorted(named) == sorted(BY_NAME), "an endpoint without a scenario, or one in two"
    for (name, code), why in UNPROVOKED.items():
        assert why
        eps = TABLE if name == "*" else (BY_NAME[name],)
        assert any(code in {c for _, c in declared(spec, ep)} for ep in eps), f"{name} no longer declares {code}"


# --- the edge: every endpoint ---------------------------------------------------------------------
async def test_the_edge_refusals_of_every_endpoint_are_declared(
    seed: Terminal, backoffice: BackOffice, svc: Services, spec: dict[str, Any]
) -> None:
    """Headers too large, no key, a key without the permission, a body over 64 KiB, a request that
    does not parse, Redis unreachable: what every endpoint answers for each is in its document."""
    client = backoffice.client
    answers = Answers(client)
    lacking = {p: await backoffice.key(p) for p in Permission}
    full = {**backoffice.headers, "Idempotency-Key": "edge-1"}
    for ep in TABLE:
        url = url_of(ep)
        body = b"{}" if ep.request else None
        r = await client.request(ep.method, url, content=body, headers={**full, "X-Pad": "x" * MAX_HEADER_BYTES})
        assert_error(r, 431, "HEADERS_TOO_LARGE")
        if not ep.public:
            assert_error(await client.request(ep.method, url, content=body), 401, "UNAUTHORIZED")
            other = next(p for p in Permission if p not in ep.permissions)
            headers = {"Authorization": f"Bearer {lacking[other]}", "Idempotency-Key": "edge-1"}
            assert_error(await client.request(ep.method, url, content=body, headers=headers), 403, "FORBIDDEN")
        if ep.request is not None:
            big = b"{" + b" " * MAX_BODY + b"}"
            assert_error(await client.request(ep.method, url, content=big, headers=full), 413, "BODY_TOO_LARGE")
        if "{" in ep.path:  # a path parameter that cannot be one
            param = ep.path.split("{", 1)[1].split("}", 1)[0]
            bad = url_of(ep, **{param: quote("NOT A CODE", safe="")})
            r = await client.request(ep.method, bad, content=body, headers=full)
            assert_error(r, 422, "INVALID_REQUEST", param)
        elif ep.request is not None:  # a body that is not JSON
            assert_error(await client.request(ep.method, url, content=b"{", headers=full), 422, "INVALID_REQUEST")
        elif ep.query:  # a query parameter out of its range (the page size, where there is one)
            name = "limit" if any(q.name == "limit" for q in ep.query) else ep.query[0].name
            r = await client.request(ep.method, url, params={name: "0"}, headers=full)
            assert_error(r, 422, "INVALID_REQUEST", name)

    # Redis unreachable: the key cannot be looked up, and /readyz says so
    reachable, svc.redis = svc.redis, Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=1)
    try:
        for ep in TABLE:
            if not ep.public or ep.name == "readyz":
                body = b"{}" if ep.request else None
                r = await client.request(ep.method, url_of(ep), content=body, headers=full)
                assert_error(r, 503, "SERVICE_UNAVAILABLE")
    finally:
        await svc.redis.aclose()
        svc.redis = reachable
    answers.check(spec, set(BY_NAME), EDGE)


# --- the ledger's database down ------------------------------------------------------------------
async def test_with_the_ledger_down_every_endpoint_that_reads_it_says_so(
    seed: Terminal, backoffice: BackOffice, svc: Services, spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Postgres unreachable: what reads or writes the ledger answers 503 LEDGER_UNAVAILABLE (the
    holds themselves never wait on it)."""
    client, h = backoffice.client, backoffice.headers
    answers = Answers(client)
    who = "/v1/convenios/EMP001/participants/CLI001"
    none = "0" * 26
    monkeypatch.setattr(order_status, "LEDGER_WAIT_S", 0.2)
    held = await seed.hold(100)  # an order's hold, so that posting its status must find it in the ledger
    assert held.status_code == 201, held.text
    stored, svc.ledger = svc.ledger, LedgerDB(f"postgresql://nobody@127.0.0.1:{free_port()}/none", timeout_s=1)
    try:
        calls = [
            ("GET", f"/v1/empenhos/E1-{none}", None),  # no longer in Redis: the ledger has it, if anyone
            ("GET", f"/v1/protocols/P{none}", None),
            ("POST", f"/v1/empenhos/E1-{none}/returns", {"amount": 100, "store": "LOJA01", "terminal": "PDV01"}),
            ("POST", f"/v1/empenhos/E1-{none}/cancel", {}),  # a sale Redis forgot: reversed from the ledger
            ("GET", "/v1/convenios/EMP001/movements", None),
            ("POST", "/v1/participants/search", {"document": "529.982.247-25"}),
            ("POST", who + "/limit-requests", {"suggested_limit": 20_000, "reason": "promoção"}),
            ("GET", who + "/limit-requests", None),
            ("GET", f"/v1/limit-requests/L{none}", None),
            ("POST", f"/v1/limit-requests/L{none}/approve", {}),
            ("POST", f"/v1/limit-requests/L{none}/reject", {"reason": "renda insuficiente"}),
            ("GET", who + "/history", None),
            ("GET", "/v1/convenios/EMP001/history", None),
            ("GET", "/v1/convenios/EMP001/duplicatas", None),
            ("GET", f"/v1/duplicatas/D{none}", None),
            ("POST", f"/v1/duplicatas/D{none}/settle", {}),
            ("GET", f"/v1/credit-holds/C1-{none}", None),
            ("POST", f"/v1/credit-holds/C1-{none}/returns", {"amount": 100}),
            ("POST", f"/v1/credit-holds/C1-{none}/cancel", {}),
            ("GET", "/v1/orders/PED-0001", None),
            ("POST", "/v1/orders/status", {"orders": [{"order": "PED-0001", "status": "PF"}]}),
            ("GET", "/v1/credits/movements", None),
            ("GET", "/v1/audit", None),
            ("POST", "/v1/reconciliation/files", {"name": "f.csv", "content": "x"}),
            ("POST", "/v1/reconciliation/runs", {}),
            ("GET", "/v1/reconciliation/records", None),
            ("GET", "/v1/reconciliation/records/1", None),
            ("POST", "/v1/reconciliation/records/1/undo", {}),
            ("GET", "/v1/cash-closing", None),
            ("GET", "/v1/receivables", None),
            ("GET", "/v1/convenios/EMP001/receivables", None),
            ("PUT", "/v1/stores/LOJA01/terminals/PDV01/closings/2025-11-17", {"lines": []}),
            ("GET", "/v1/jobs", None),
            ("GET", "/v1/convenios", None),
            ("GET", "/v1/participants", None),
            ("GET", "/v1/decisions", None),
            ("GET", "/v1/limit-requests", None),
        ]
        for method, url, body in calls:
            r = await client.request(method, url, json=body, headers={**h, "Idempotency-Key": f"down-{url}"})
            assert_error(r, 503, "LEDGER_UNAVAILABLE")
    finally:
        await svc.ledger.close()
        svc.ledger = stored
    answers.check(spec, set(BY_NAME), LEDGER)


# --- the checkout --------------------------------------------------------------------------------
async def test_the_checkout_s_declines_are_declared(
    seed: Terminal,
    backoffice: BackOffice,
    svc: Services,
    clock: Clock,
    spec: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The limit query, the password check and the empenho's life, each refusal a terminal can meet."""
    t, office = seed, backoffice
    answers = Answers(t.client)

    # codes nobody registered
    assert_error(await t.limit("EMP404", "CLI001"), 404, "UNKNOWN_CONVENIO")
    assert_error(await t.limit("EMP001", "CLI404"), 404, "UNKNOWN_PARTICIPANT")
    r = await t.client.get("/v1/participants/CLI404/convenios", headers=t.headers)
    assert_error(r, 404, "UNKNOWN_PARTICIPANT")

    # the password check: a wrong integration key, nobody there, no password yet
    assert_error(await t.check_password(integration_key="not-the-key"), 403, "INTEGRATION_KEY_INVALID")
    assert_error(await t.check_password(convenio="EMP404"), 404, "UNKNOWN_CONVENIO")
    assert_error(await t.check_password(participant="CLI404"), 404, "UNKNOWN_PARTICIPANT")
    await office.add_participant("EMP001", "NOPW", limit=0)
    assert_error(await t.check_password(participant="NOPW"), 422, "PASSWORD_NOT_SET")
    # five wrong passwords lock the participant out; the sixth check is refused with when to retry
    await office.add_participant("EMP001", "LOCK", limit=0, password="4321")
    for _ in range(svc.settings.password_max_failures):
        assert (await t.check_password(password="0000", participant="LOCK")).json()["valid"] is False
    locked = assert_error(await t.check_password(password="4321", participant="LOCK"), 423, "PASSWORD_LOCKED")
    assert locked["retry_after"] > 0
    # as many checks in progress as failures allowed: one more must wait
    await office.add_participant("EMP001", "BUSY", limit=0, password="4321")
    checks = svc.keys.password_checks("BUSY")
    await svc.redis.zadd(checks, {f"P{n}": clock.now + 60_000 for n in range(svc.settings.password_max_failures)})
    assert_error(await t.check_password(password="4321", participant="BUSY"), 429, "PASSWORD_CHECK_BUSY")
    # a check that took longer than a check may (an overloaded machine): no proof, check again
    verify = svc.passwords.verify

    async def slow_verify(stored_hash: str, password: str) -> bool:
        clock.advance(CHECK_STALE_MS / 1000 + 1)
        return await verify(stored_hash, password)

    monkeypatch.setattr(svc.passwords, "verify", slow_verify)
    assert_error(await t.check_password(), 503, "PASSWORD_CHECK_TIMEOUT")
    monkeypatch.setattr(svc.passwords, "verify", verify)

    # the empenho's declines: no proof, a proof nobody issued, a plate not registered, over the limit
    proof = await mint_proof(svc, "EMP001", "CLI001")  # a decline does not spend it
    assert_error(await t.hold(100, proof=None), 422, "PASSWORD_PROOF_REQUIRED")
    assert_error(await t.hold(100, proof="not-a-proof"), 422, "PASSWORD_PROOF_INVALID")
    r = await t.hold(100, proof=proof, vehicle={"plate": "ABC1D23"})
    assert_error(r, 422, "VEHICLE_NOT_REGISTERED")
    assert_error(await t.hold(11_001, proof=proof), 422, "INSUFFICIENT_LIMIT")
    assert_error(await t.as_participant("EMP404", "CLI001").hold(100, proof=proof), 404, "UNKNOWN_CONVENIO")
    assert_error(await t.as_participant("EMP001", "CLI404").hold(100, proof=proof), 404, "UNKNOWN_PARTICIPANT")
    # the limit windows: one order, a day, a month
    for window, code in (("order_max", "ORDER"), ("daily_max", "DAILY"), ("monthly_max", "MONTHLY")):
        assert (await office.update_participant("EMP001", "CLI001", windows={window: 500})).status_code == 200
        declined = assert_error(await t.hold(600, proof=proof), 422, f"{code}_LIMIT_EXCEEDED")
        assert (declined["scope"], declined["remaining"]) == ("participant", 500)
    assert (await office.update_participant("EMP001", "CLI001", windows={})).status_code == 200
    # blocked by an operator: the participant, then the whole convênio
    assert (await office.update_participant("EMP001", "CLI001", status="BLOCKED")).status_code == 200
    assert_error(await t.hold(100, proof=proof), 422, "PARTICIPANT_BLOCKED")
    assert (await office.update_participant("EMP001", "CLI001", status="ACTIVE")).status_code == 200
    assert (await office.update_convenio("EMP001", status="BLOCKED")).status_code == 200
    assert_error(await t.hold(100, proof=proof), 422, "CONVENIO_BLOCKED")
    assert (await office.update_convenio("EMP001", status="ACTIVE")).status_code == 200
    # the same Idempotency-Key for another sale
    first = await t.hold(100, proof=proof, idempotency_key="PDV01-000777")
    assert first.status_code == 201, first.text
    r = await t.hold(200, proof=await mint_proof(svc, "EMP001", "CLI001"), idempotency_key="PDV01-000777")
    assert_error(r, 409, "IDEMPOTENCY_CONFLICT")

    # commit and cancel: more than held, twice with another coupon, a cancelled one, an expired one
    eid = first.json()["id"]
    assert_error(await t.commit(eid, amount=101), 422, "COMMIT_EXCEEDS_HOLD")
    assert (await t.commit(eid, coupon="CUPOM-1")).status_code == 200
    assert_error(await t.commit(eid, coupon="CUPOM-2"), 409, "COMMIT_CONFLICT")
    cancelled = (await t.hold(100, proof=await mint_proof(svc, "EMP001", "CLI001"))).json()["id"]
    assert (await t.cancel(cancelled)).status_code == 200
    assert assert_error(await t.commit(cancelled), 409, "EMPENHO_NOT_PENDING")["status"] == "CANCELLED"
    forgotten = (await t.hold(100, proof=await mint_proof(svc, "EMP001", "CLI001"))).json()["id"]
    clock.advance(svc.settings.hold_ttl_s + 1)
    assert assert_error(await t.cancel(forgotten), 409, "EMPENHO_NOT_PENDING")["status"] == "EXPIRED"
    # returns: of a hold not committed, for more than is left, under a key already used, all of it
    assert assert_error(await t.return_sale(cancelled, 50), 409, "EMPENHO_NOT_COMMITTED")["status"] == "CANCELLED"
    assert assert_error(await t.return_sale(eid, 101), 422, "RETURN_EXCEEDS_SALE")["returnable"] == 100
    assert (await t.return_sale(eid, 40, idempotency_key="DEV-777")).status_code == 201
    assert_error(await t.return_sale(eid, 41, idempotency_key="DEV-777"), 409, "IDEMPOTENCY_CONFLICT")
    assert (await t.return_sale(eid, 60)).status_code == 201
    assert_error(await t.cancel(eid), 409, "FULLY_RETURNED")
    for unknown in ("E1-NOTANEMPENHO", f"E1-{'0' * 26}"):  # not one of ours; one nobody placed
        assert_error(await t.get(unknown), 404, "UNKNOWN_EMPENHO")
        assert_error(await t.commit(unknown), 404, "UNKNOWN_EMPENHO")
        assert_error(await t.cancel(unknown), 404, "UNKNOWN_EMPENHO")
        assert_error(await t.return_sale(unknown, 10), 404, "UNKNOWN_EMPENHO")
    r = await t.client.get(f"/v1/protocols/P{'0' * 26}", headers=t.headers)
    assert_error(r, 404, "UNKNOWN_PROTOCOL")

    # a key of store L001 elsewhere; a convênio accepted at L001 only, at another store
    await office.client.post("/v1/stores", json={"code": "L001", "name": "LOJA 1"}, headers=office.headers)
    await office.client.put("/v1/stores/L001/terminals/PDV01", headers=office.headers)
    token, _ = await apikeys.create(svc, frozenset(Permission), store="L001")
    l001 = Terminal(t.client, {**t.creds, "api_key": token})
    pending = (await t.hold(100, proof=await mint_proof(svc, "EMP001", "CLI001"))).json()["id"]
    assert_error(await l001.hold(100, proof=proof), 403, "STORE_NOT_ALLOWED")
    for refused in (l001.get(pending), l001.commit(pending), l001.cancel(pending), l001.return_sale(pending, 10)):
        assert_error(await refused, 403, "STORE_NOT_ALLOWED")
    assert (await office.update_convenio("EMP001", stores=["L001"])).status_code == 200
    assert_error(await t.hold(100, proof=proof), 422, "STORE_NOT_ACCEPTED")
    answers.check(spec, FEATURES["checkout"])


# --- the back office's registry --------------------------------------------------------------------
async def test_the_registry_s_refusals_are_declared(backoffice: BackOffice, spec: dict[str, Any]) -> None:
    """Convênios, participants, vehicles, their histories and duplicatas: what an operator is refused."""
    office, client, h = backoffice, backoffice.client, backoffice.headers
    answers = Answers(client)
    await office.create_convenio("REG01", total_limit=10_000)
    await office.create_convenio("REG01", total_limit=10_000, expect=409)  # CONVENIO_EXISTS
    await office.add_participant("REG01", "ANA", limit=6_000)
    await office.add_participant("REG01", "ANA", expect=409)  # PARTICIPANT_EXISTS
    await office.add_participant("REG01", "BIA", limit=6_000, expect=422)  # LIMIT_ALLOCATION_EXCEEDED
    await office.add_participant("REG404", "ANA", expect=404)  # UNKNOWN_CONVENIO
    # more than the total limit allows, and a sharing mode that may no longer change
    over = assert_error(await office.update_convenio("REG01", total_limit=5_000), 422, "LIMIT_ALLOCATION_EXCEEDED")
    assert (over["total_limit"], over["allocated"]) == (5_000, 6_000)
    assert_error(await office.update_convenio("REG01", shared=True), 422, "SHARING_MODE_LOCKED")
    over = assert_error(await office.update_participant("REG01", "ANA", limit=20_000), 422, "LIMIT_ALLOCATION_EXCEEDED")
    assert over["unallocated"] == 4_000
    assert_error(await office.update_convenio("REG404", name="X"), 404, "UNKNOWN_CONVENIO")
    assert_error(await office.update_convenio("REG01", stores=["L404"]), 422, "STORE_NOT_REGISTERED", "stores")
    await office.create_convenio("REG02", total_limit=1, stores=["L404"], expect=422)  # STORE_NOT_REGISTERED
    assert_error(await office.update_participant("REG404", "ANA", name="X"), 404, "UNKNOWN_CONVENIO")
    assert_error(await office.update_participant("REG01", "NOBODY", name="X"), 404, "UNKNOWN_PARTICIPANT")
    # reading what is not there
    for url in ("/v1/convenios/REG404", "/v1/convenios/REG404/participants", "/v1/convenios/REG404/movements"):
        assert_error(await client.get(url, headers=h), 404, "UNKNOWN_CONVENIO")
    for url in ("/v1/convenios/REG404/history", "/v1/convenios/REG404/duplicatas"):
        assert_error(await client.get(url, headers=h), 404, "UNKNOWN_CONVENIO")
    for convenio, participant, code in (
        ("REG404", "ANA", "UNKNOWN_CONVENIO"),
        ("REG01", "NOBODY", "UNKNOWN_PARTICIPANT"),
    ):
        base = f"/v1/convenios/{convenio}/participants/{participant}"
        for url in (base, base + "/vehicles", base + "/history"):
            assert_error(await client.get(url, headers=h), 404, code)
        assert_error(await office.add_vehicle(convenio, participant, "ABC1D23"), 404, code)
    r = await client.delete("/v1/convenios/REG01/participants/ANA/vehicles/ABC1D23", headers=h)
    assert_error(r, 404, "UNKNOWN_VEHICLE")
    r = await client.get("/v1/participants", params={"convenio": "REG404"}, headers=h)
    assert_error(r, 404, "UNKNOWN_CONVENIO")
    for method, url in (("GET", "/v1/duplicatas/D" + "0" * 26), ("POST", "/v1/duplicatas/D" + "0" * 26 + "/settle")):
        assert_error(await client.request(method, url, headers=h), 404, "UNKNOWN_DUPLICATA")
    answers.check(spec, FEATURES["registry"])


async def test_the_limit_requests_refusals_are_declared(
    backoffice: BackOffice, svc: Services, spec: dict[str, Any]
) -> None:
    """Asking for a participant nobody registered, deciding a request twice, approving more than the
    convênio can give, approving for a record Redis lost (a rebuild pending)."""
    office, client, h = backoffice, backoffice.client, backoffice.headers
    answers = Answers(client)

    async def ask(convenio: str, participant: str, limit: int) -> httpx.Response:
        return await client.post(
            f"/v1/convenios/{convenio}/participants/{participant}/limit-requests",
            json={"suggested_limit": limit, "reason": "aumento de salário"},
            headers=h,
        )

    async def decide(request: str, verb: str, body: dict[str, Any]) -> httpx.Response:
        return await client.post(f"/v1/limit-requests/{request}/{verb}", json=body, headers=h)

    await office.create_convenio("LR01", total_limit=10_000)
    await office.create_convenio("LR02", total_limit=10_000)
    for convenio, participant in (("LR01", "ANA"), ("LR01", "BIA"), ("LR02", "CAIO")):
        await office.add_participant(convenio, participant, limit=1_000)
    for convenio, participant, code in (
        ("LR404", "ANA", "UNKNOWN_CONVENIO"),
        ("LR01", "NOBODY", "UNKNOWN_PARTICIPANT"),
    ):
        assert_error(await ask(convenio, participant, 2_000), 404, code)
        r = await client.get(f"/v1/convenios/{convenio}/participants/{participant}/limit-requests", headers=h)
        assert_error(r, 404, code)
    nobody = "L" + "0" * 26
    assert_error(await client.get(f"/v1/limit-requests/{nobody}", headers=h), 404, "UNKNOWN_LIMIT_REQUEST")
    assert_error(await decide(nobody, "approve", {}), 404, "UNKNOWN_LIMIT_REQUEST")
    assert_error(await decide(nobody, "reject", {"reason": "x"}), 404, "UNKNOWN_LIMIT_REQUEST")
    # decided once: neither approved nor rejected again
    rejected = (await ask("LR01", "ANA", 2_000)).json()["id"]
    assert (await decide(rejected, "reject", {"reason": "renda insuficiente"})).status_code == 200
    again = assert_error(await decide(rejected, "reject", {"reason": "de novo"}), 409, "LIMIT_REQUEST_DECIDED")
    assert again["status"] == "REJECTED"
    assert_error(await decide(rejected, "approve", {}), 409, "LIMIT_REQUEST_DECIDED")
    # more than the convênio has left to give
    greedy = (await ask("LR01", "ANA", 50_000)).json()["id"]
    assert_error(await decide(greedy, "approve", {}), 422, "LIMIT_ALLOCATION_EXCEEDED")
    # Redis lost the participant, then a whole convênio (until `convenio rebuild`): nothing to set
    lost_participant = (await ask("LR01", "BIA", 2_000)).json()["id"]
    lost_convenio = (await ask("LR02", "CAIO", 2_000)).json()["id"]
    await svc.redis.delete(svc.keys.participant("LR01", "BIA"), svc.keys.convenio("LR02"))
    assert_error(await decide(lost_participant, "approve", {}), 404, "UNKNOWN_PARTICIPANT")
    assert_error(await decide(lost_convenio, "approve", {}), 404, "UNKNOWN_CONVENIO")
    answers.check(spec, FEATURES["limit requests"])


# --- the customers' current accounts -------------------------------------------------------------
async def test_the_credits_and_orders_refusals_are_declared(
    backoffice: BackOffice, clock: Clock, svc: Services, spec: dict[str, Any]
) -> None:
    """Credits registered twice, orders their credits do not cover, a credit hold's life, the ERP's
    order statuses and finance's export: what each is refused."""
    client, h = backoffice.client, backoffice.headers
    answers = Answers(client)

    async def credit(reference: str, amount: int) -> httpx.Response:
        body = {"reference": reference, "type": "DEVOLUCAO", "amount": amount, "origin": {"channel": "WEB"}}
        return await client.post("/v1/participants/CLI001/credits", json=body, headers=h)

    async def hold(amount: int, key: str) -> httpx.Response:
        body = {"customer": "CLI001", "amount": amount, "order": "PED-0100", "channel": "WEB"}
        return await client.post("/v1/credit-holds", json=body, headers={**h, "Idempotency-Key": key})

    async def step(hold_id: str, verb: str, body: dict[str, Any]) -> httpx.Response:
        return await client.post(f"/v1/credit-holds/{hold_id}/{verb}", json=body, headers=h)

    async def give_back(hold_id: str, amount: int, key: str) -> httpx.Response:
        body = {"amount": amount, "store": "LOJA01"}
        return await client.post(
            f"/v1/credit-holds/{hold_id}/returns", json=body, headers={**h, "Idempotency-Key": key}
        )

    assert (await credit("DEV-0001", 1_500)).status_code == 201
    assert_error(await credit("DEV-0001", 1_600), 409, "CREDIT_REFERENCE_EXISTS")
    assert (await client.get("/v1/participants/CLI001/credits", headers=h)).json()["available"] == 1_500
    assert_error(await hold(1_501, "PED-0100-a"), 422, "INSUFFICIENT_CREDIT")
    first = await hold(500, "PED-0100-b")
    assert first.status_code == 201, first.text
    assert_error(await hold(400, "PED-0100-b"), 409, "IDEMPOTENCY_CONFLICT")
    # commit: more than held, then twice with another coupon; a cancelled hold; an expired one
    hid = first.json()["id"]
    assert_error(await step(hid, "commit", {"coupon": "NF-1", "amount": 501}), 422, "CREDIT_COMMIT_EXCEEDS_HOLD")
    assert (await step(hid, "commit", {"coupon": "NF-1"})).status_code == 200
    assert_error(await step(hid, "commit", {"coupon": "NF-2"}), 409, "CREDIT_COMMIT_CONFLICT")
    cancelled = (await hold(100, "PED-0100-c")).json()["id"]
    assert (await step(cancelled, "cancel", {})).status_code == 200
    assert_error(await step(cancelled, "commit", {"coupon": "NF-3"}), 409, "CREDIT_HOLD_NOT_PENDING")
    # returns: more than the order committed, of an order not committed, one key for two returns; a
    # reversal of an order returned whole
    assert_error(await give_back(hid, 501, "DEV-a"), 422, "RETURN_EXCEEDS_SALE")
    assert_error(await give_back(cancelled, 50, "DEV-b"), 409, "CREDIT_HOLD_NOT_COMMITTED")
    assert (await give_back(hid, 500, "DEV-c")).status_code == 201
    assert_error(await give_back(hid, 400, "DEV-c"), 409, "IDEMPOTENCY_CONFLICT")
    assert_error(await step(hid, "cancel", {}), 409, "FULLY_RETURNED")
    forgotten = (await hold(100, "PED-0100-d")).json()["id"]
    clock.advance(svc.settings.hold_ttl_s + 1)
    expired = assert_error(await step(forgotten, "cancel", {}), 409, "CREDIT_HOLD_NOT_PENDING")
    assert expired["status"] == "EXPIRED"
    for unknown in ("C1-NOTAHOLD", f"C1-{'0' * 26}"):  # not one of ours; one nobody placed
        assert_error(await client.get(f"/v1/credit-holds/{unknown}", headers=h), 404, "UNKNOWN_CREDIT_HOLD")
        assert_error(await step(unknown, "commit", {"coupon": "NF-4"}), 404, "UNKNOWN_CREDIT_HOLD")
        assert_error(await step(unknown, "cancel", {}), 404, "UNKNOWN_CREDIT_HOLD")
        assert_error(await give_back(unknown, 100, f"DEV-{unknown}"), 404, "UNKNOWN_CREDIT_HOLD")
    assert_error(await client.get("/v1/orders/PED-0404", headers=h), 404, "UNKNOWN_ORDER")
    # a key of store L001: a web order, and the holds of another store (placed without a store)
    await client.post("/v1/stores", json={"code": "L001", "name": "LOJA 1"}, headers=h)
    token, _ = await apikeys.create(svc, frozenset(Permission), store="L001")
    h, web = {"Authorization": f"Bearer {token}"}, hid
    assert_error(await hold(100, "PED-0100-e"), 403, "STORE_NOT_ALLOWED")
    assert_error(await client.get(f"/v1/credit-holds/{web}", headers=h), 403, "STORE_NOT_ALLOWED")
    for verb, body in (("commit", {"coupon": "NF-5"}), ("cancel", {})):
        assert_error(await step(web, verb, body), 403, "STORE_NOT_ALLOWED")
    assert_error(await give_back(web, 10, "DEV-e"), 403, "STORE_NOT_ALLOWED")
    h = backoffice.headers
    # the ERP: a cancelling status needs the cancel permission too; a status cannot do both
    only_empenho = {"Authorization": f"Bearer {await backoffice.key(Permission.EMPENHO)}"}
    batch = {"orders": [{"order": "PED-0100", "status": "PC"}]}
    assert_error(await client.post("/v1/orders/status", json=batch, headers=only_empenho), 403, "FORBIDDEN")
    both = {"commit_statuses": ["PF"], "cancel_statuses": ["PF"], "update_balance": False}
    r = await client.put("/v1/integration/order-status", json=both, headers=h)
    assert_error(r, 422, "INVALID_REQUEST", "cancel_statuses")
    assert (await client.get("/v1/integration/order-status", headers=h)).status_code == 200
    # finance: a period that ends before it starts
    r = await client.get("/v1/credits/movements", params={"from": "2026-11-02", "to": "2026-11-01"}, headers=h)
    assert_error(r, 422, "INVALID_REQUEST", "to")
    answers.check(spec, FEATURES["credits"])


# --- stores and their terminals -------------------------------------------------------------------
async def test_the_stores_refusals_are_declared(backoffice: BackOffice, spec: dict[str, Any]) -> None:
    """A store registered twice, changed or read or given a terminal while nobody registered it."""
    client, h = backoffice.client, backoffice.headers
    answers = Answers(client)
    body = {"code": "L001", "name": "LOJA CENTRO", "time_zone": "America/Manaus"}
    assert (await client.post("/v1/stores", json=body, headers=h)).status_code == 201
    assert_error(await client.post("/v1/stores", json=body, headers=h), 409, "STORE_EXISTS")
    assert (await client.get("/v1/stores", headers=h)).json()["stores"][0]["time_zone"] == "America/Manaus"
    assert_error(await client.get("/v1/stores/L404", headers=h), 404, "UNKNOWN_STORE")
    assert_error(await client.patch("/v1/stores/L404", json={"name": "X"}, headers=h), 404, "UNKNOWN_STORE")
    assert_error(await client.put("/v1/stores/L404/terminals/PDV01", headers=h), 404, "UNKNOWN_STORE")
    assert (await client.put("/v1/stores/L001/terminals/PDV01", headers=h)).status_code == 200
    answers.check(spec, FEATURES["stores"])


# --- the audit log ----------------------------------------------------------------------------------
async def test_the_audit_log_s_refusals_are_declared(backoffice: BackOffice, spec: dict[str, Any]) -> None:
    """A filter that is no instant, or holds a control character: the log answers nothing else."""
    client, h = backoffice.client, backoffice.headers
    answers = Answers(client)
    assert (await client.get("/v1/audit", params={"action": "apikey."}, headers=h)).status_code == 200
    assert_error(await client.get("/v1/audit", params={"from": "ontem"}, headers=h), 422, "INVALID_REQUEST", "from")
    assert_error(await client.get("/v1/audit", params={"target": "a\x01"}, headers=h), 422, "INVALID_REQUEST", "target")
    answers.check(spec, FEATURES["audit"])


# --- the back office's lists ---------------------------------------------------------------------------
async def test_the_back_office_lists_refusals_are_declared(
    backoffice: BackOffice, svc: Services, spec: dict[str, Any]
) -> None:
    """A key scoped to a store asking for another store's decisions."""
    client = backoffice.client
    answers = Answers(client)
    token, _ = await apikeys.create(svc, frozenset({Permission.CONVENIOS_READ}), name="gerente", store="LOJA02")
    r = await client.get("/v1/decisions", params={"store": "LOJA01"}, headers={"Authorization": f"Bearer {token}"})
    assert_error(r, 403, "STORE_NOT_ALLOWED", "store")
    answers.check(spec, FEATURES["back-office lists"])


# --- the reconciliation ------------------------------------------------------------------------------
async def test_the_reconciliation_s_refusals_are_declared(
    backoffice: BackOffice, svc: Services, ledger_url: str, spec: dict[str, Any]
) -> None:
    """A closing file or a posted closing with a bad line, a record that is not there or cannot be
    undone, a convênio without a receivable, a closing posted twice with other lines or for another
    store than the key's."""
    client, h = backoffice.client, backoffice.headers
    answers = Answers(client)
    bad = {"name": "ruim.csv", "content": "store,terminal,date,coupon,convenio,participant,amount\nL,T,x,C,E,P,1\n"}
    r = await client.post("/v1/reconciliation/files", json=bad, headers=h)
    assert_error(r, 422, "RECONCILIATION_FILE_INVALID")
    good = {
        "name": "ok.csv",
        "content": "store,terminal,date,coupon,convenio,participant,amount\nL,T,2025-11-17,C,E,P,1\n",
    }
    assert (await client.post("/v1/reconciliation/files", json=good, headers=h)).status_code == 201
    [record] = (await client.get("/v1/reconciliation/records", params={"state": "NOT_RECONCILED"}, headers=h)).json()[
        "records"
    ]
    assert_error(
        await client.post(f"/v1/reconciliation/records/{record['id']}/undo", headers=h),
        409,
        "RECONCILIATION_NOT_UNDOABLE",
    )
    for method, url in (("GET", "/v1/reconciliation/records/999999"), ("POST", "/v1/reconciliation/records/x/undo")):
        assert_error(await client.request(method, url, headers=h), 404, "UNKNOWN_RECONCILIATION_RECORD")
    r = await client.post("/v1/reconciliation/runs", json={"records": [999999]}, headers=h)
    assert_error(r, 404, "UNKNOWN_RECONCILIATION_RECORD")
    assert_error(await client.get("/v1/convenios/EMP404/receivables", headers=h), 404, "UNKNOWN_CONVENIO")
    url = "/v1/stores/LOJA01/terminals/PDV01/closings/2025-11-17"
    line = {"coupon": "C", "convenio": "EMP001", "participant": "CLI001", "amount": 100}
    assert (await client.put(url, json={"lines": [line]}, headers=h)).status_code == 200
    assert_error(
        await client.put(url, json={"lines": [{**line, "amount": 0}]}, headers=h), 422, "RECONCILIATION_FILE_INVALID"
    )
    assert_error(await client.put(url, json={"lines": [{**line, "amount": 1}]}, headers=h), 409, "CLOSING_CONFLICT")
    scoped, _ = await apikeys.create(svc, frozenset({Permission.EMPENHO}), "PDV", store="L001")
    r = await client.put(url, json={"lines": [line]}, headers={"Authorization": f"Bearer {scoped}"})
    assert_error(r, 403, "STORE_NOT_ALLOWED")
    # a store's reader sees its own store's records and closing, never another's
    reader, _ = await apikeys.create(svc, frozenset({Permission.SALES_READ}), "gerente L001", store="L001")
    mine = {"Authorization": f"Bearer {reader}"}
    for url in ("/v1/reconciliation/records", "/v1/cash-closing"):
        assert_error(await client.get(url, params={"store": "L"}, headers=mine), 403, "STORE_NOT_ALLOWED")
        assert (await client.get(url, headers=mine)).status_code == 200
    r = await client.get(f"/v1/reconciliation/records/{record['id']}", headers=mine)  # a record of store L
    assert_error(r, 403, "STORE_NOT_ALLOWED")
    for url in ("/v1/cash-closing", "/v1/receivables", "/v1/jobs"):
        assert (await client.get(url, headers=h)).status_code == 200
    answers.check(spec, FEATURES["reconciliation"])
