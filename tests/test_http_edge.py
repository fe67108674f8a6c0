"""The HTTP edge: what a terminal gets back when what it sends is wrong.

The contract: malformed JSON, wrong types, missing fields, negative or zero amounts are
`422 INVALID_REQUEST` naming the offending field; a body over 64 KiB is `413`; every error has
the body `{"error": {"code", "message", ...}}`; and no input may produce a `500`. A declined or
rejected request holds nothing: the participant's available limit does not move.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import msgspec
import pytest

from gateway.app import ENDPOINTS
from gateway.auth.schemas import IntegrationKeySet, PasswordCheck
from gateway.credits.schemas import CreditCreate, CreditHoldRequest
from gateway.holds.schemas import CancelRequest, CommitRequest, EmpenhoRequest
from gateway.orders.schemas import OrderStatusBatch, OrderStatusParams
from gateway.platform.errors import ERRORS, ErrorCode
from gateway.platform.http.edge import MAX_BODY
from gateway.platform.http.endpoint import Endpoint
from gateway.registry.schemas import (
    ConvenioCreate,
    ConvenioUpdate,
    LimitRequestApprove,
    LimitRequestCreate,
    LimitRequestReject,
    ParticipantCreate,
    ParticipantSearch,
    ParticipantUpdate,
    VehicleSave,
)
from gateway.returns.schemas import CreditReturnRequest, ReturnRequest
from gateway.stores.schemas import StoreCreate, StoreUpdate, TerminalSave
from ledger.month.schemas import SettleRequest
from ledger.reconciliation.api import ClosingPost, FileUpload, RunRequest, UndoRequest
from tests.checkout import VALID_PATH, BackOffice, Terminal, assert_error

DROP = object()  # marks a field to leave out of a body
AVAILABLE = 11000  # the worked example's R$ 100,00 limit + R$ 10,00 tolerance, untouched


def url_of(ep: Endpoint, **values: str) -> str:
    return ep.path.format(**{**VALID_PATH, **values})


def sale(**changes: Any) -> dict[str, Any]:
    """A valid sale body for the worked example, with some fields changed (or DROPped)."""
    base = {
        "convenio": "EMP001",
        "participant": "CLI001",
        "amount": 578,
        "terminal": "PDV01",
        "store": "LOJA01",
        "sale": "V1",
    }
    return with_changes(base, changes)


def with_changes(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    body = dict(base)
    for name, value in changes.items():
        if value is DROP:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def encoded(body: dict[str, Any] | bytes) -> bytes:
    return body if isinstance(body, bytes) else msgspec.json.encode(body)


# --- the bad bodies ---------------------------------------------------------------------------
#: what is wrong with the sale -> (case, body or changes to a valid sale, the field the 422 must name)
BAD_SALES: dict[str, list[tuple[str, dict[str, Any] | bytes, str]]] = {
    "wrong types": [
        ("amount as string", {"amount": "578"}, "amount"),
        ("amount in reais", {"amount": 5.78}, "amount"),
        ("amount as bool", {"amount": True}, "amount"),
        ("amount null", {"amount": None}, "amount"),
        ("convenio as number", {"convenio": 1}, "convenio"),
        ("sale as object", {"sale": {"id": 1}}, "sale"),
        ("proof as number", {"proof": 1}, "proof"),
    ],
    "amounts out of range": [
        ("negative amount", {"amount": -578}, "amount"),
        ("zero amount", {"amount": 0}, "amount"),
        ("huge amount", {"amount": 10**30}, "amount"),
        ("amount just over 64 bits", {"amount": 2**64}, "amount"),
        ("amount past R$ 1 bi", {"amount": 100_000_000_001}, "amount"),
        ("amount 1e400", encoded(sale(amount=0)).replace(b'"amount":0', b'"amount":1e400'), "amount"),
        ("amount of 400 digits", encoded(sale(amount=0)).replace(b'"amount":0', b'"amount":' + b"9" * 400), "amount"),
    ],
    "missing fields": [
        (f"missing {name}", {name: DROP}, name)
        for name in ("amount", "convenio", "participant", "terminal", "store", "sale")
    ],
    "bad strings": [
        ("convenio with spaces", {"convenio": "EMP 001"}, "convenio"),
        ("participant of 100 chars", {"participant": "C" * 100}, "participant"),
        ("empty terminal", {"terminal": ""}, "terminal"),
        ("store too long", {"store": "S" * 65}, "store"),
        ("proof too long", {"proof": "p" * 257}, "proof"),
    ],
    "bad vehicle": [
        ("negative odometer", {"vehicle": {"plate": "ABC1D23", "odometer_km": -1}}, "vehicle.odometer_km"),
        ("odometer as string", {"vehicle": {"plate": "ABC1D23", "odometer_km": "10"}}, "vehicle.odometer_km"),
        ("odometer past 10M km", {"vehicle": {"plate": "ABC1D23", "odometer_km": 10_000_001}}, "vehicle.odometer_km"),
        ("vehicle without plate", {"vehicle": {"odometer_km": 10}}, "vehicle.plate"),
        ("plate with spaces", {"vehicle": {"plate": "ABC 1D23"}}, "vehicle.plate"),
        ("vehicle as array", {"vehicle": ["ABC1D23", 10]}, "vehicle"),
        ("vehicle as string", {"vehicle": "ABC1D23"}, "vehicle"),
    ],
    "unknown fields": [
        ("unknown field", {"discount": 10}, "discount"),
        ("unknown vehicle field", {"vehicle": {"plate": "ABC1D23", "color": "red"}}, "vehicle.color"),
    ],
    "not a JSON object": [
        ("malformed JSON", b'{"convenio": "EMP001", "amount": 578,', "body"),
        ("trailing comma", b'{"amount": 578,}', "body"),
        ("not JSON at all", b"convenio=EMP001&amount=578", "body"),
        ("NaN amount", b'{"amount": NaN}', "body"),
        ("empty body", b"", "body"),
        ("whitespace body", b"  \n ", "body"),
        ("array instead of object", b"[]", "body"),
        ("array of the sale", b"[" + encoded(sale()) + b"]", "body"),
        ("null body", b"null", "body"),
        ("string body", b'"EMP001"', "body"),
        ("number body", b"578", "body"),
    ],
    "invalid UTF-8": [
        ("invalid UTF-8 in a string", encoded(sale(convenio="@")).replace(b'"@"', b'"\xff\xfe"'), "body"),
        ("truncated UTF-8 sequence", encoded(sale(terminal="@")).replace(b'"@"', b'"PDV\xc3"'), "body"),
    ],
}


def as_body(base: dict[str, Any], bad: dict[str, Any] | bytes) -> bytes:
    return bad if isinstance(bad, bytes) else encoded(with_changes(base, bad))


def mismatch(case: str, r: httpx.Response, field: str) -> str | None:
    """None when `r` is the 422 INVALID_REQUEST naming `field`; else what came back instead."""
    try:
        assert_error(r, 422, "INVALID_REQUEST", field)
    except AssertionError:
        return f"{case}: wanted 422 INVALID_REQUEST field={field!r}, got {r.status_code} {r.text[:160]}"
    return None


@pytest.mark.parametrize("cases", list(BAD_SALES.values()), ids=list(BAD_SALES))
async def test_a_bad_empenho_body_is_422_naming_the_field(seed: Terminal, cases: list[Any]) -> None:
    """POST /v1/empenhos with a valid Idempotency-Key but a bad body: 422, field named, nothing held."""
    wrong = []
    for n, (case, bad, field) in enumerate(cases):
        r = await seed.client.post(
            "/v1/empenhos",
            content=as_body(sale(), bad),
            headers={**seed.headers, "Idempotency-Key": f"bad-body-{n}", "Content-Type": "application/json"},
        )
        wrong.append(mismatch(case, r, field))
    assert not any(wrong), "\n".join(w for w in wrong if w)
    assert await seed.available() == AVAILABLE


BAD_PASSWORD_CHECKS: list[tuple[str, dict[str, Any] | bytes, str]] = [
    ("missing password", {"password": DROP}, "password"),
    ("missing integration_key", {"integration_key": DROP}, "integration_key"),
    ("password as number", {"password": 123456}, "password"),
    ("empty password", {"password": ""}, "password"),
    ("password too long", {"password": "1" * 129}, "password"),
    ("integration_key null", {"integration_key": None}, "integration_key"),
    ("integration_key as array", {"integration_key": ["ik"]}, "integration_key"),
    ("unknown field", {"pin": "1234"}, "pin"),
    ("malformed JSON", b'{"password": "1234"', "body"),
    ("empty body", b"", "body"),
    ("array instead of object", b'["1234", "ik"]', "body"),
]


async def test_a_bad_password_check_is_422_and_costs_no_attempt(seed: Terminal) -> None:
    """A garbled check is 422 naming the field, and not a failed password: the next wrong one
    still has 4 attempts left."""
    valid = {"password": seed.password, "integration_key": seed.integration_key}
    wrong = []
    for case, bad, field in BAD_PASSWORD_CHECKS:
        r = await seed.client.post(
            "/v1/convenios/EMP001/participants/CLI001/password/verify",
            content=as_body(valid, bad),
            headers=seed.headers,
        )
        wrong.append(mismatch(case, r, field))
    assert not any(wrong), "\n".join(w for w in wrong if w)
    r = await seed.check_password(password="not-the-password")
    assert r.status_code == 200, r.text
    assert (r.json()["valid"], r.json()["attempts_left"]) == (False, 4)


BAD_COMMITS: list[tuple[str, dict[str, Any] | bytes, str]] = [
    ("amount as string", {"amount": "578"}, "amount"),
    ("amount in reais", {"amount": 5.78}, "amount"),
    ("amount as bool", {"amount": True}, "amount"),
    ("zero amount", {"amount": 0}, "amount"),
    ("negative amount", {"amount": -1}, "amount"),
    ("huge amount", {"amount": 10**30}, "amount"),
    ("missing coupon", {"coupon": DROP}, "coupon"),
    ("coupon as number", {"coupon": 123}, "coupon"),
    ("empty coupon", {"coupon": ""}, "coupon"),
    ("unknown field", {"tip": 100}, "tip"),
    ("malformed JSON", b'{"coupon": ', "body"),
    ("empty body", b"", "body"),
    ("array instead of object", b'["CUPOM-1"]', "body"),
]


async def test_a_bad_commit_is_422_and_leaves_the_hold_pending(seed: Terminal) -> None:
    """A garbled commit is 422 naming the field and debits nothing: the empenho stays PENDING
    and can still be committed afterwards."""
    held = await seed.hold(578)
    assert held.status_code == 201, held.text
    eid = held.json()["id"]
    wrong = []
    for case, bad, field in BAD_COMMITS:
        r = await seed.client.post(
            f"/v1/empenhos/{eid}/commit", content=as_body({"coupon": "CUPOM-1"}, bad), headers=seed.headers
        )
        wrong.append(mismatch(case, r, field))
    assert not any(wrong), "\n".join(w for w in wrong if w)
    assert (await seed.get(eid)).json()["status"] == "PENDING"
    assert (await seed.limit()).json()["balance"] == 10000
    committed = await seed.commit(eid)
    assert committed.status_code == 200, committed.text
    assert committed.json()["balance"] == 10000 - 578


async def test_cancel_takes_an_empty_body_but_not_a_malformed_one(seed: Terminal) -> None:
    """The cancel body is optional; when there is one it must still be valid JSON."""
    held = (await seed.hold(578)).json()
    url = f"/v1/empenhos/{held['id']}/cancel"
    assert_error(await seed.client.post(url, content=b"{", headers=seed.headers), 422, "INVALID_REQUEST", "body")
    assert_error(
        await seed.client.post(url, json={"reason": 1}, headers=seed.headers), 422, "INVALID_REQUEST", "reason"
    )
    assert (await seed.get(held["id"])).json()["status"] == "PENDING"
    r = await seed.client.post(url, headers=seed.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "CANCELLED"


# --- Idempotency-Key --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    [None, "", "k" * 129, "with space", "acentuação"],
    ids=["missing", "empty", "129 chars", "space", "non-ASCII"],
)
async def test_a_hold_needs_a_valid_idempotency_key(seed: Terminal, key: str | None) -> None:
    """No key, or one that is not 1 to 128 visible ASCII characters: 422 naming the header."""
    headers = dict(seed.headers)
    if key is not None:
        headers["Idempotency-Key"] = key.encode() if not key.isascii() else key  # type: ignore[assignment]
    r = await seed.client.post("/v1/empenhos", json=sale(proof=await seed.proof()), headers=headers)
    assert_error(r, 422, "INVALID_REQUEST", "Idempotency-Key")
    assert await seed.available() == AVAILABLE


async def test_an_idempotency_key_of_128_chars_is_accepted(seed: Terminal) -> None:
    """128 characters is the limit, not past it."""
    r = await seed.hold(578, idempotency_key="k" * 128)
    assert r.status_code == 201, r.text


# --- body size --------------------------------------------------------------------------------
def padded(body: dict[str, Any], size: int) -> bytes:
    """The body as JSON, padded with whitespace to exactly `size` bytes (still valid JSON)."""
    raw = encoded(body)
    assert len(raw) <= size
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


request_endpoints = [ep for ep in ENDPOINTS if ep.request is not None]


@pytest.mark.parametrize("ep", request_endpoints, ids=lambda ep: ep.name)
async def test_a_body_over_64_kib_is_413(seed: Terminal, backoffice: BackOffice, ep: Endpoint) -> None:
    """A declared Content-Length over 64 KiB is refused, for every endpoint with a body."""
    r = await seed.client.request(
        ep.method,
        url_of(ep),
        content=padded({"x": 1}, MAX_BODY + 1),
        headers={**backoffice.headers, "Idempotency-Key": "big-1"},
    )
    assert_error(r, 413, "BODY_TOO_LARGE")


async def test_a_chunked_body_over_64_kib_is_413(seed: Terminal) -> None:
    """Without a Content-Length, the stream is cut off as soon as it passes 64 KiB."""
    body = padded(sale(proof=await seed.proof()), MAX_BODY + 1)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    r = await seed.client.post(
        "/v1/empenhos", content=chunks(), headers={**seed.headers, "Idempotency-Key": "chunked-1"}
    )
    assert "content-length" not in r.request.headers and r.request.headers["transfer-encoding"] == "chunked"
    assert_error(r, 413, "BODY_TOO_LARGE")
    assert await seed.available() == AVAILABLE


async def test_a_content_length_that_understates_the_body_is_still_413(seed: Terminal) -> None:
    """The size is counted on what arrives, not on what the client claims."""
    body = padded(sale(proof=await seed.proof()), MAX_BODY + 100)
    r = await seed.client.post(
        "/v1/empenhos", content=body, headers={**seed.headers, "Idempotency-Key": "liar-1", "Content-Length": "100"}
    )
    assert_error(r, 413, "BODY_TOO_LARGE")
    assert await seed.available() == AVAILABLE


async def test_a_body_of_exactly_64_kib_is_accepted(seed: Terminal) -> None:
    """64 KiB is the limit, not past it: the padded sale is held."""
    body = padded(sale(proof=await seed.proof()), MAX_BODY)
    r = await seed.client.post("/v1/empenhos", content=body, headers={**seed.headers, "Idempotency-Key": "exact-1"})
    assert r.status_code == 201, r.text
    assert r.json()["available"] == AVAILABLE - 578


@pytest.mark.parametrize(
    "declared", [b"abc", b"-1", b"1.5", b"\xb2"], ids=["letters", "negative", "decimal", "superscript two"]
)
async def test_a_garbled_content_length_is_422(seed: Terminal, declared: bytes) -> None:
    """A Content-Length that is not a whole number is the client's error, never a 500."""
    r = await seed.client.post(
        "/v1/empenhos",
        content=encoded(sale()),
        headers={**seed.headers, "Idempotency-Key": "cl-1", b"Content-Length": declared},
    )
    assert_error(r, 422, "INVALID_REQUEST", "Content-Length")


# --- path parameters --------------------------------------------------------------------------
BAD_PATH_VALUES = {"with spaces": "EMP 001", "100 chars": "X" * 100}
path_cases = [
    pytest.param(ep, name, id=f"{ep.name}-{name}") for ep in ENDPOINTS for name in re.findall(r"{(\w+)}", ep.path)
]


@pytest.mark.parametrize(("ep", "param"), path_cases)
async def test_an_invalid_path_code_is_422_naming_the_param(backoffice: BackOffice, ep: Endpoint, param: str) -> None:
    """An invalid code in the path (spaces, 100 chars) is the client's error, named; not a 404 or a 500."""
    for value in BAD_PATH_VALUES.values():
        url = url_of(ep, **{param: quote(value, safe="")})
        r = await backoffice.client.request(
            ep.method, url, json={}, headers={**backoffice.headers, "Idempotency-Key": "path-1"}
        )
        assert_error(r, 422, "INVALID_REQUEST", param)


# --- routing ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/v1",
        "/v2/empenhos",
        "/v1/nothing",
        "/v1/empenhos/E1-X/refund",
        "/v1/convenios/EMP001/participants/CLI001/limit/extra",
    ],
)
async def test_an_unknown_path_is_404_not_found(seed: Terminal, path: str) -> None:
    """Unknown paths answer in the contract's error shape, key or no key."""
    assert_error(await seed.client.get(path, headers=seed.headers), 404, "NOT_FOUND")
    assert_error(await seed.client.post(path), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/empenhos"),
        ("DELETE", "/v1/empenhos/E1-01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        ("GET", "/v1/empenhos/E1-01ARZ3NDEKTSV4RRFFQ69G5FAV/commit"),
        ("PUT", "/v1/convenios/EMP001/participants/CLI001/limit"),
        ("POST", "/v1/participants/CLI001/convenios"),
        ("DELETE", "/v1/convenios"),  # GET lists, POST creates
        ("POST", "/v1/decisions"),
        ("GET", "/v1/integration/key"),
        ("POST", "/healthz"),
        ("POST", "/openapi.json"),
    ],
)
async def test_a_wrong_method_is_405_method_not_allowed(seed: Terminal, method: str, path: str) -> None:
    """A known path with the wrong method: 405 in the contract's error shape."""
    r = await seed.client.request(method, path, headers=seed.headers)
    assert_error(r, 405, "METHOD_NOT_ALLOWED")


# --- no input produces a 500 ------------------------------------------------------------------
#: a valid body for every request type, the base that each garbage value is put into
TEMPLATES: dict[type, dict[str, Any]] = {
    PasswordCheck: {"password": "123456", "integration_key": "ik_whatever"},
    EmpenhoRequest: sale(proof="p", vehicle={"plate": "ABC1D23", "odometer_km": 10}),
    CommitRequest: {"coupon": "CUPOM-1", "amount": 100},
    CancelRequest: {"reason": "cliente desistiu"},
    SettleRequest: {"note": "TED 123"},
    ReturnRequest: {"amount": 100, "store": "LOJA01", "terminal": "PDV01", "reason": "troca", "refund": "POOL"},
    CreditReturnRequest: {"amount": 100, "store": "LOJA01", "terminal": "PDV01", "reason": "troca"},
    ConvenioCreate: {
        "code": "EMPFZ",
        "name": "N",
        "total_limit": 1000,
        "tolerance": 0,
        "shared": False,
        "rollover": {"policy": "MONTHLY", "day": 1},
        "billing": {"automatic": False, "period": "MONTHLY", "in_participant_name": False, "payment_method": "BOLETO"},
        "requires_vehicle": False,
        "status": "ACTIVE",
        "stores": [],
        "time_zone": "America/Manaus",
    },
    ConvenioUpdate: {
        "name": "N",
        "total_limit": 2_000_000,
        "tolerance": 0,
        "shared": False,
        "rollover": {"policy": "ON_BILLING"},
        "billing": {"automatic": True},
        "requires_vehicle": False,
        "status": "ACTIVE",
    },
    ParticipantCreate: {"code": "CLIFZ", "name": "N", "document": "529.982.247-25", "limit": 0, "status": "ACTIVE"},
    ParticipantUpdate: {"name": "N", "document": "529.982.247-25", "limit": 100, "status": "ACTIVE"},
    ParticipantSearch: {"document": "529.982.247-25"},
    VehicleSave: {"plate": "XYZ9A99", "description": "Gol"},
    StoreCreate: {"code": "LOJAFZ", "name": "LOJA CENTRO", "time_zone": "America/Manaus", "status": "ACTIVE"},
    StoreUpdate: {"name": "LOJA CENTRO", "time_zone": "America/Rio_Branco", "status": "BLOCKED"},
    TerminalSave: {"status": "ACTIVE"},
    IntegrationKeySet: {"integration_key": "ik_fuzz_12345"},
    CreditCreate: {
        "reference": "DEV-0001",
        "type": "DEVOLUCAO",
        "amount": 1500,
        "origin": {"channel": "STORE", "store": "LOJA01", "terminal": "PDV01", "order": "PED-0001"},
        "expires_at": "2099-12-31T23:59:59Z",
    },
    CreditHoldRequest: {
        "customer": "CLI001",
        "amount": 100,
        "order": "PED-0001",
        "channel": "STORE",
        "store": "LOJA01",
        "terminal": "PDV01",
    },
    OrderStatusParams: {"commit_statuses": ["PF"], "cancel_statuses": ["PC"], "update_balance": False},
    OrderStatusBatch: {"orders": [{"order": "PED-0001", "status": "PF"}]},
    LimitRequestCreate: {"suggested_limit": 15_000, "reason": "aumento de salário", "urgent": True},
    LimitRequestApprove: {"limit": 20_000, "reason": "cotado pela análise"},
    LimitRequestReject: {"reason": "renda insuficiente"},
    FileUpload: {"name": "fechamento.csv", "content": "store,terminal,date,coupon,convenio,participant,amount\n"},
    RunRequest: {"date": "2025-11-17", "window": 3},
    UndoRequest: {"note": "conferir"},
    ClosingPost: {"lines": [{"coupon": "C-1", "convenio": "EMP001", "participant": "CLI001", "amount": 578}]},
}
GARBAGE_VALUES: list[Any] = [
    None,
    True,
    -1,
    0,
    2**63,
    2**64,
    10**30,
    1.5,
    1e308,
    "",
    " ",
    "x" * 5000,
    "\u0000",
    "😀 ção",
    "-1",
    [],
    [None],
    {},
    {"a": {"b": [1]}},
]
#: raw JSON text that no Python value encodes to: bad UTF-8 inside a string, out-of-range numbers
RAW_GARBAGE_VALUES: list[bytes] = [b'"\xff"', b'"\xed\xa0\x80"', b'"\xc3"', b"1e999", b"-" + b"9" * 400, b"NaN", b"01"]
GARBAGE_BODIES: list[bytes] = [
    b"",
    b" ",
    b"{}",
    b"[]",
    b"null",
    b"0",
    b"-0",
    b'"x"',
    b"{",
    b"}",
    b"[",
    b"\xff\xfe\x00",
    b"\x00" * 100,
    b'{"a":' * 2000,
    b"[" * 20000,
    b"{" + b'"a":{' * 3000,
    b'{"__proto__": {}}',
    b'{"amount": 1e999999}',
    b'{"amount": -' + b"9" * 5000 + b"}",
    b'{"amount": 0x10}',
    b'{"code": "EMP001", "code": "EMP002"}',
    b"\xef\xbb\xbf{}",
    '{"name": "\ud800"}'.encode("utf-8", "surrogatepass"),
]
GARBAGE_PATH_VALUES: list[str] = [
    " ",
    "%",
    "%00",
    "..",
    ".",
    "a/b",
    "\x00",
    "😀",
    "ção",
    "X" * 300,
    "-",
    "_",
    "E1-",
    "E99-01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "E0-01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "E1-0000000000000000000000000Z",
    "E-1-01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "emp001",
    "EMP001\n",
    "*",
    "[",
    "{convenio}",
    "null",
    "0",
]
GARBAGE_QUERIES: list[str] = ["0", "-1", "abc", "²", "١٠", "1001", "", "1" * 50, "1.5", " 5", "5 ", "1e3"]
GARBAGE_IDEMPOTENCY_KEYS: list[bytes] = [b"", b" ", b"\xff", b"k" * 129, b"k" * 10_000, b"a\tb", b"\x7f"]


def no_500(r: httpx.Response, what: str, failures: list[str]) -> None:
    if r.status_code >= 500:
        failures.append(f"{what} -> {r.status_code} {r.text[:120]}")
        return
    if r.status_code >= 400:
        body = r.json()
        if set(body) != {"error"} or not {"code", "message"} <= set(body["error"]):
            failures.append(f"{what} -> {r.status_code} not the contract's error shape: {r.text[:120]}")


async def test_garbage_bodies_never_yield_500(seed: Terminal, backoffice: BackOffice) -> None:
    """Every endpoint with a body, fed garbage bodies and every field set to garbage: no 5xx."""
    assert {ep.request for ep in request_endpoints} <= set(TEMPLATES), "a new request type needs a template"
    client, failures = seed.client, []
    headers = {**backoffice.headers, "Idempotency-Key": "fuzz"}
    for ep in request_endpoints:
        template = TEMPLATES[ep.request]
        bodies = [(f"body={raw[:40]!r}", raw) for raw in GARBAGE_BODIES]
        for field in template:
            bodies += [(f"{field}={v!r:.40}", encoded({**template, field: v})) for v in GARBAGE_VALUES]
            hole = encoded({**template, field: "@RAW@"})
            bodies += [(f"{field}={raw[:40]!r} (raw)", hole.replace(b'"@RAW@"', raw)) for raw in RAW_GARBAGE_VALUES]
            bodies.append((f"{field} missing", encoded(with_changes(template, {field: DROP}))))
        for n, (what, body) in enumerate(bodies):
            headers["Idempotency-Key"] = f"fuzz-{ep.name}-{n}"
            r = await client.request(ep.method, url_of(ep), content=body, headers=headers)
            no_500(r, f"{ep.method} {ep.path} {what}", failures)
    assert not failures, "\n".join(failures)


async def test_garbage_path_params_queries_and_headers_never_yield_500(seed: Terminal, backoffice: BackOffice) -> None:
    """Every endpoint, every path parameter garbage in turn, plus garbage queries and headers: no 5xx."""
    client, failures = seed.client, []
    for ep in ENDPOINTS:
        body = encoded(TEMPLATES[ep.request]) if ep.request else None
        for param in re.findall(r"{(\w+)}", ep.path):
            for value in GARBAGE_PATH_VALUES:
                url = url_of(ep, **{param: quote(value, safe="")})
                r = await client.request(
                    ep.method, url, content=body, headers={**backoffice.headers, "Idempotency-Key": "fuzz-path"}
                )
                no_500(r, f"{ep.method} {url}", failures)
        for authorization in [b"Bearer \xff\xfe", b"Bearer " + b"\x00" * 10, b"Bearer  " + b"k" * 256, b"\xff"]:
            r = await client.request(ep.method, url_of(ep), content=body, headers={b"Authorization": authorization})
            no_500(r, f"{ep.method} {ep.path} Authorization={authorization[:20]!r}", failures)
    for value in GARBAGE_QUERIES:
        for query in ({"limit": value}, {"after": value}, {"after": value, "limit": value}):
            r = await client.get("/v1/convenios/EMP001/participants", params=query, headers=backoffice.headers)
            no_500(r, f"GET participant list ?{query}", failures)
    for key in GARBAGE_IDEMPOTENCY_KEYS:
        r = await client.post("/v1/empenhos", json=sale(proof="p"), headers={**seed.headers, b"Idempotency-Key": key})
        no_500(r, f"POST /v1/empenhos Idempotency-Key={key[:20]!r}", failures)
    assert not failures, "\n".join(failures)
    assert await seed.available() == AVAILABLE


@pytest.mark.parametrize("limit", ["0", "1001", "abc", "-1", "²"])
async def test_a_bad_page_size_is_422_naming_limit(backoffice: BackOffice, seed: Terminal, limit: str) -> None:
    """The participant list's `limit` query is 1 to 1000; anything else is named, never a 500."""
    r = await backoffice.client.get(
        "/v1/convenios/EMP001/participants", params={"limit": limit}, headers=backoffice.headers
    )
    assert_error(r, 422, "INVALID_REQUEST", "limit")


# --- /openapi.json ----------------------------------------------------------------------------
@pytest.fixture
async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


async def test_openapi_lists_every_endpoint_of_the_table(openapi: dict[str, Any]) -> None:
    """The document describes the whole table: each path and method, its path parameters."""
    assert openapi["openapi"].startswith("3.")
    for ep in ENDPOINTS:
        op = openapi["paths"].get(ep.path, {}).get(ep.method.lower())
        assert op is not None, f"{ep.method} {ep.path} missing from /openapi.json"
        params = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert params == set(re.findall(r"{(\w+)}", ep.path)), ep.name
        assert str(ep.status) in op["responses"], ep.name
        assert op.get("security"), f"{ep.name} needs a key but the document does not say so"


async def test_openapi_responses_carry_each_error_status(openapi: dict[str, Any]) -> None:
    """Each operation lists the status of each error it may give, plus 401/403/422."""
    for ep in ENDPOINTS:
        responses = openapi["paths"][ep.path][ep.method.lower()]["responses"]
        codes = list(ep.errors) + [ErrorCode.UNAUTHORIZED, ErrorCode.FORBIDDEN, ErrorCode.INVALID_REQUEST]
        if ep.request is not None:
            codes.append(ErrorCode.BODY_TOO_LARGE)
        for code in codes:
            status = str(ERRORS[code][0])
            assert status in responses, f"{ep.name}: {code} ({status}) not among {sorted(responses)}"
            assert code in responses[status].get("description", ""), f"{ep.name}: {code} not described"


async def test_openapi_request_bodies_reference_component_schemas(openapi: dict[str, Any]) -> None:
    """Request bodies point at named schemas, and every $ref in the document resolves."""
    schemas = openapi["components"]["schemas"]
    for ep in request_endpoints:
        op = openapi["paths"][ep.path][ep.method.lower()]
        ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref
    text = msgspec.json.encode(openapi).decode()
    for ref in set(re.findall(r'"\$ref":"([^"]+)"', text)):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref


# --- operations -------------------------------------------------------------------------------
async def test_healthz_and_readyz_need_no_key(client: httpx.AsyncClient) -> None:
    """Load balancers probe without credentials."""
    r = await client.get("/healthz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok"
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["checks"]["redis"] == "ok"


async def test_metrics_is_prometheus_text_with_request_counts(seed: Terminal) -> None:
    """/metrics needs no key and counts the requests answered, by endpoint and status."""
    assert (await seed.limit()).status_code == 200
    r = await seed.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "# TYPE convenio_http_requests_total counter" in r.text
    assert re.search(
        r'^convenio_http_requests_total\{[^}]*endpoint="limit"[^}]*status="200"[^}]*\} \d', r.text, re.MULTILINE
    ), r.text[:2000]
