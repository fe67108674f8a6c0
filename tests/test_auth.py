"""Authentication and permissions at the HTTP edge.

Every endpoint of `gateway.app.ENDPOINTS` must refuse a request without a valid API key
(401 UNAUTHORIZED) or without one of its permissions (403 FORBIDDEN), and must do so before it
looks at the path, the body or the data: a terminal without the right key learns nothing.
The key itself is a secret, so no answer ever echoes it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.app import ENDPOINTS
from gateway.auth import apikeys
from gateway.auth.permissions import Permission
from gateway.platform.http.endpoint import Endpoint
from gateway.platform.services import Services
from tests import checkout
from tests.checkout import VALID_PATH, BackOffice, Terminal

#: values that fail every path parameter's pattern
INVALID_PATH = dict.fromkeys(VALID_PATH, "not a code " + "X" * 90)
UNKNOWN_KEY = "cvk_" + "U" * 43  # looks like a key, was never issued

#: Authorization headers that carry no usable key
NOT_A_KEY: dict[str, str | None] = {
    "no header": None,
    "unknown key": f"Bearer {UNKNOWN_KEY}",
    "basic scheme": "Basic x",
    "bearer without key": "Bearer ",
    "bearer alone": "Bearer",
    "key without scheme": UNKNOWN_KEY,
    "oversized key": "Bearer " + "k" * 300,
}


def by_name(ep: Endpoint) -> str:
    return f"{ep.method} {ep.name}"


every_endpoint = pytest.mark.parametrize("ep", ENDPOINTS, ids=by_name)


def url_of(ep: Endpoint, values: dict[str, str] = VALID_PATH) -> str:
    return ep.path.format(**values)


def auth(authorization: str | None) -> dict[str, str]:
    return {} if authorization is None else {"Authorization": authorization}


async def call(
    client: httpx.AsyncClient,
    ep: Endpoint,
    authorization: str | None,
    *,
    path: dict[str, str] = VALID_PATH,
    body: bytes = b"{}",
) -> httpx.Response:
    """Call the endpoint the way a terminal would, but with a body that is not valid for it:
    if anything but the key were looked at first, the answer would be a 422 or a 404."""
    content = body if ep.request is not None else None
    return await client.request(ep.method, url_of(ep, path), headers=auth(authorization), content=content)


def assert_error(r: httpx.Response, status: int, code: str, *secrets: str) -> dict[str, Any]:
    """The contract's error shape, and no secret of the caller anywhere in the answer."""
    return checkout.assert_error(r, status, code, secrets=secrets)


def without(ep: Endpoint) -> frozenset[Permission]:
    """Every permission code except those the endpoint accepts."""
    return frozenset(Permission) - ep.permissions


# --- 401: no usable key ----------------------------------------------------------------------
def test_every_endpoint_of_the_table_needs_a_permission() -> None:
    """The table is the whole API: no endpoint may be reachable without a permission."""
    for ep in ENDPOINTS:
        assert not ep.public, ep.name
        assert ep.permissions, ep.name


@every_endpoint
@pytest.mark.parametrize("authorization", list(NOT_A_KEY.values()), ids=list(NOT_A_KEY))
async def test_no_usable_key_is_401(client: httpx.AsyncClient, ep: Endpoint, authorization: str | None) -> None:
    """A missing, malformed or unknown key is UNAUTHORIZED, whatever the endpoint."""
    r = await call(client, ep, authorization)
    assert_error(r, 401, "UNAUTHORIZED", UNKNOWN_KEY, "k" * 300)


@every_endpoint
async def test_a_revoked_key_is_401(
    client: httpx.AsyncClient, svc: Services, backoffice: BackOffice, ep: Endpoint
) -> None:
    """Revocation takes effect at once (the test settings cache keys for 0 s)."""
    token = await backoffice.key(*ep.permissions)
    await apikeys.revoke(svc, apikeys.key_id(token))
    r = await call(client, ep, f"Bearer {token}")
    assert_error(r, 401, "UNAUTHORIZED", token)


async def test_a_key_works_until_it_is_revoked(seed: Terminal, svc: Services, backoffice: BackOffice) -> None:
    """The same key and request: 200 before the revocation, 401 right after it."""
    token = await backoffice.key(Permission.LIMIT_QUERY)
    terminal = Terminal(seed.client, {**seed.creds, "api_key": token})
    assert (await terminal.limit()).status_code == 200
    await apikeys.revoke(svc, apikeys.key_id(token))
    assert_error(await terminal.limit(), 401, "UNAUTHORIZED", token)


# --- 403: a key without the permission -------------------------------------------------------
@every_endpoint
async def test_a_key_without_the_permission_is_403(
    client: httpx.AsyncClient, backoffice: BackOffice, ep: Endpoint
) -> None:
    """A key holding every permission but the endpoint's own is FORBIDDEN."""
    token = await backoffice.key(*without(ep))
    r = await call(client, ep, f"Bearer {token}")
    assert_error(r, 403, "FORBIDDEN", token)


@every_endpoint
async def test_auth_is_checked_before_path_and_body(
    client: httpx.AsyncClient, backoffice: BackOffice, ep: Endpoint
) -> None:
    """Invalid path codes and a malformed (even oversized) body still get 401/403 first."""
    wrong = await backoffice.key(*without(ep))
    for body in (b"{not json", b"[" + b" " * (70 * 1024) + b"]"):
        r = await call(client, ep, None, path=INVALID_PATH, body=body)
        assert_error(r, 401, "UNAUTHORIZED")
        r = await call(client, ep, f"Bearer {UNKNOWN_KEY}", path=INVALID_PATH, body=body)
        assert_error(r, 401, "UNAUTHORIZED", UNKNOWN_KEY)
        r = await call(client, ep, f"Bearer {wrong}", path=INVALID_PATH, body=body)
        assert_error(r, 403, "FORBIDDEN", wrong)


# --- what each permission grants ---------------------------------------------------------------
async def test_permission_3183_queries_limits(seed: Terminal, backoffice: BackOffice) -> None:
    """3183 is the terminal's limit query: both limit endpoints, and nothing else."""
    token = await backoffice.key(Permission.LIMIT_QUERY)
    client, headers = seed.client, {"Authorization": f"Bearer {token}"}

    r = await client.get("/v1/convenios/EMP001/participants/CLI001/limit", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["available"] == 11000
    r = await client.get("/v1/participants/CLI001/convenios", headers=headers)
    assert r.status_code == 200, r.text
    assert [c["convenio"] for c in r.json()["convenios"]] == ["EMP001"]

    r = await client.get("/v1/convenios/EMP001", headers=headers)
    assert_error(r, 403, "FORBIDDEN", token)
    r = await client.post("/v1/empenhos", json=seed.sale(100, None), headers={**headers, "Idempotency-Key": "k1"})
    assert_error(r, 403, "FORBIDDEN", token)


@pytest.mark.parametrize("permission", [Permission.CONVENIOS_READ, Permission.SALES_READ], ids=["603", "1748"])
async def test_603_and_1748_read_the_registry(seed: Terminal, backoffice: BackOffice, permission: Permission) -> None:
    """Either registry-read code reads convênios, participants and vehicles, but writes nothing."""
    await backoffice.add_vehicle("EMP001", "CLI001", "ABC1D23", "Gol")
    token = await backoffice.key(permission)
    client, headers = seed.client, {"Authorization": f"Bearer {token}"}
    base = "/v1/convenios/EMP001"

    r = await client.get(base, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["code"] == "EMP001" and r.json()["tolerance"] == 1000
    r = await client.get(f"{base}/participants", headers=headers)
    assert r.status_code == 200, r.text
    assert [p["code"] for p in r.json()["participants"]] == ["CLI001"]
    r = await client.get(f"{base}/participants/CLI001", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["limit"] == 10000
    r = await client.get(f"{base}/participants/CLI001/vehicles", headers=headers)
    assert r.status_code == 200, r.text
    assert [v["plate"] for v in r.json()["vehicles"]] == ["ABC1D23"]

    writes = [
        client.post("/v1/convenios", json={"code": "EMP777", "name": "X", "total_limit": 1}, headers=headers),
        client.patch(base, json={"tolerance": 0}, headers=headers),
        client.post(f"{base}/participants", json={"code": "CLI777", "name": "X"}, headers=headers),
        client.patch(f"{base}/participants/CLI001", json={"limit": 1}, headers=headers),
        client.post(f"{base}/participants/CLI001/vehicles", json={"plate": "XYZ9A99"}, headers=headers),
        client.delete(f"{base}/participants/CLI001/vehicles/ABC1D23", headers=headers),
    ]
    for write in writes:
        assert_error(await write, 403, "FORBIDDEN", token)
    assert (await seed.available()) == 11000  # nothing moved


async def test_admin_9000_writes_the_registry(client: httpx.AsyncClient, backoffice: BackOffice) -> None:
    """9000 creates and updates convênios, participants and vehicles."""
    token = await backoffice.key(Permission.ADMIN)
    headers = {"Authorization": f"Bearer {token}"}
    base = "/v1/convenios/EMP900"

    r = await client.post(
        "/v1/convenios", json={"code": "EMP900", "name": "EMPRESA 900", "total_limit": 50000}, headers=headers
    )
    assert r.status_code == 201, r.text
    r = await client.patch(base, json={"tolerance": 500}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["tolerance"] == 500
    r = await client.post(
        f"{base}/participants", json={"code": "CLI900", "name": "CLIENTE 900", "limit": 2000}, headers=headers
    )
    assert r.status_code == 201, r.text
    r = await client.patch(f"{base}/participants/CLI900", json={"limit": 3000}, headers=headers)
    assert r.status_code == 200, r.text
    assert (r.json()["limit"], r.json()["balance"]) == (3000, 3000)
    r = await client.post(f"{base}/participants/CLI900/vehicles", json={"plate": "ABC1D23"}, headers=headers)
    assert r.status_code == 201, r.text
    r = await client.delete(f"{base}/participants/CLI900/vehicles/ABC1D23", headers=headers)
    assert r.status_code == 200, r.text

    # the writes are really there, as a registry reader sees them
    r = await client.get(f"{base}/participants/CLI900", headers=backoffice.headers)
    assert r.status_code == 200 and r.json()["limit"] == 3000
    r = await client.get(f"{base}/participants/CLI900/vehicles", headers=backoffice.headers)
    assert r.json()["vehicles"] == []


async def test_admin_9000_is_not_a_terminal_key(seed: Terminal, backoffice: BackOffice) -> None:
    """Back-office writes do not include placing empenhos or querying limits."""
    token = await backoffice.key(Permission.ADMIN)
    headers = {"Authorization": f"Bearer {token}"}
    r = await seed.client.post("/v1/empenhos", json=seed.sale(100, None), headers={**headers, "Idempotency-Key": "k"})
    assert_error(r, 403, "FORBIDDEN", token)
    r = await seed.client.get("/v1/convenios/EMP001/participants/CLI001/limit", headers=headers)
    assert_error(r, 403, "FORBIDDEN", token)


async def test_permission_3187_sets_the_integration_key(seed: Terminal, backoffice: BackOffice) -> None:
    """3187 changes the integration key; the password check then wants the new one."""
    token = await backoffice.key(Permission.INTEGRATION)
    r = await seed.client.put(
        "/v1/integration/key", json={"integration_key": "ik_new_key_123"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200, r.text
    assert_error(await seed.check_password(), 403, "INTEGRATION_KEY_INVALID", seed.creds["api_key"])
    r = await seed.check_password(integration_key="ik_new_key_123")
    assert r.status_code == 200 and r.json()["valid"] is True


@pytest.mark.parametrize(
    "permission", [Permission.EMPENHO, Permission.EMPENHO_CANCEL, Permission.CONVENIOS_READ, Permission.SALES_READ]
)
async def test_who_may_read_an_empenho(seed: Terminal, backoffice: BackOffice, permission: Permission) -> None:
    """The terminal that placed or may cancel it, and registry readers, read an empenho."""
    held = await seed.hold(578)
    assert held.status_code == 201, held.text
    token = await backoffice.key(permission)
    r = await seed.client.get(f"/v1/empenhos/{held.json()['id']}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.json()["amount"] == 578


# --- the key is a secret ---------------------------------------------------------------------
async def test_the_key_is_never_echoed(seed: Terminal, backoffice: BackOffice) -> None:
    """Whatever goes wrong (401, 403, 404, 422, 409), the answer does not carry the key."""
    token = seed.creds["api_key"]
    client, headers = seed.client, seed.headers
    answers = [
        (
            await client.get(
                "/v1/convenios/EMP001/participants/CLI001/limit", headers={"Authorization": f"Basic {token}"}
            ),
            401,
        ),
        (
            await client.get(
                "/v1/convenios/EMP001/participants/CLI001/limit", headers={"Authorization": f"Bearer {token}x"}
            ),
            401,
        ),
        (await client.get("/v1/convenios/EMP001", headers=headers), 403),
        (await client.get("/v1/convenios/NOPE/participants/CLI001/limit", headers=headers), 404),
        (await client.get("/v1/empenhos/E1-01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=headers), 404),
        (await client.post("/v1/empenhos", content=token.encode(), headers={**headers, "Idempotency-Key": token}), 422),
        (await client.post("/v1/empenhos", json=seed.sale(100, None), headers=headers), 422),
        (await client.get(f"/v1/convenios/{token}x{token}/participants/CLI001/limit", headers=headers), 422),
    ]
    first = await seed.hold(100, idempotency_key="same-key")
    again = await seed.hold(200, idempotency_key="same-key")
    answers += [(again, 409)]
    assert first.status_code == 201
    for r, status in answers:
        assert r.status_code == status, r.text
        assert token not in r.text, r.text
        assert all(token not in v for v in r.headers.values())
