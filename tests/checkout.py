"""What a checkout terminal and a back-office operator do, as small helpers, so that tests
read like the scenario they check."""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx

from gateway.auth import apikeys
from gateway.auth.permissions import Permission
from gateway.platform.services import Services

_sales = itertools.count(1)

#: a valid value for every path parameter the endpoint table uses (nothing behind them exists)
VALID_PATH = {
    "convenio": "EMP001",
    "participant": "CLI001",
    "plate": "ABC1D23",
    "id": "E1-01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "protocol": "P01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "duplicata": "D01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "order": "PED-0001",
    "request": "L01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "store": "LOJA01",
    "terminal": "PDV01",
    "date": "2025-11-17",
}


def assert_error(
    r: httpx.Response, status: int, code: str, field: str | None = None, secrets: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The contract's error: status, JSON body {"error": {"code", "message", ...}}, no stack
    trace, the offending field when one is expected, and none of the caller's secrets."""
    assert r.status_code == status, f"{r.status_code} {r.text}"
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert "Traceback" not in r.text
    if field is not None:
        assert error.get("field") == field, error
    for secret in secrets:
        if secret:
            assert secret not in r.text, "a secret was echoed in the body"
            assert all(secret not in v for v in r.headers.values()), "a secret was echoed in a header"
    return error


class Clock:
    """Milliseconds since the epoch that only move when a test says so."""

    def __init__(self) -> None:
        self.now = time.time_ns() // 1_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


class Terminal:
    """A checkout terminal holding the demo's credentials (or any others)."""

    def __init__(self, client: httpx.AsyncClient, creds: dict[str, Any]) -> None:
        self.client = client
        self.creds = creds
        self.convenio = creds["convenio"]
        self.participant = creds["participant"]
        self.password = creds["password"]
        self.integration_key = creds["integration_key"]
        self.headers = {"Authorization": f"Bearer {creds['api_key']}"}

    def as_participant(self, convenio: str, participant: str, password: str | None = None) -> Terminal:
        return Terminal(
            self.client, {**self.creds, "convenio": convenio, "participant": participant, "password": password}
        )

    async def limit(self, convenio: str | None = None, participant: str | None = None) -> httpx.Response:
        c, p = convenio or self.convenio, participant or self.participant
        return await self.client.get(f"/v1/convenios/{c}/participants/{p}/limit", headers=self.headers)

    async def available(self) -> int:
        r = await self.limit()
        assert r.status_code == 200, r.text
        return r.json()["available"]

    async def check_password(
        self,
        password: str | None = None,
        integration_key: str | None = None,
        convenio: str | None = None,
        participant: str | None = None,
    ) -> httpx.Response:
        c, p = convenio or self.convenio, participant or self.participant
        return await self.client.post(
            f"/v1/convenios/{c}/participants/{p}/password/verify",
            json={
                "password": password if password is not None else self.password,
                "integration_key": integration_key or self.integration_key,
            },
            headers=self.headers,
        )

    async def proof(self) -> str:
        r = await self.check_password()
        assert r.status_code == 200 and r.json()["valid"], r.text
        return r.json()["proof"]

    def sale(self, amount: int, proof: str | None, **extra: Any) -> dict[str, Any]:
        body = {
            "convenio": self.convenio,
            "participant": self.participant,
            "amount": amount,
            "terminal": "PDV01",
            "store": "LOJA01",
            "sale": f"V{next(_sales)}",
            "proof": proof,
        }
        body.update(extra)
        return body

    async def hold(
        self,
        amount: int,
        proof: str | None = "auto",
        idempotency_key: str | None = None,
        body: dict[str, Any] | None = None,
        **extra: Any,
    ) -> httpx.Response:
        if proof == "auto" and body is None:
            proof = await self.proof()
        body = body or self.sale(amount, proof, **extra)
        key = idempotency_key or f"idem-{body['sale']}-{time.perf_counter_ns()}"
        return await self.client.post("/v1/empenhos", json=body, headers={**self.headers, "Idempotency-Key": key})

    async def commit(self, empenho_id: str, coupon: str = "CUPOM-1", amount: int | None = None) -> httpx.Response:
        body: dict[str, Any] = {"coupon": coupon}
        if amount is not None:
            body["amount"] = amount
        return await self.client.post(f"/v1/empenhos/{empenho_id}/commit", json=body, headers=self.headers)

    async def cancel(self, empenho_id: str, reason: str | None = None) -> httpx.Response:
        body = {} if reason is None else {"reason": reason}
        return await self.client.post(f"/v1/empenhos/{empenho_id}/cancel", json=body, headers=self.headers)

    async def get(self, empenho_id: str) -> httpx.Response:
        return await self.client.get(f"/v1/empenhos/{empenho_id}", headers=self.headers)

    async def return_sale(
        self,
        empenho_id: str,
        amount: int,
        idempotency_key: str | None = None,
        store: str = "LOJA01",
        terminal: str = "PDV01",
        **extra: Any,
    ) -> httpx.Response:
        """A return (devolução) of part of a committed sale at this terminal."""
        body = {"amount": amount, "store": store, "terminal": terminal, **extra}
        key = idempotency_key or f"ret-{empenho_id}-{time.perf_counter_ns()}"
        headers = {**self.headers, "Idempotency-Key": key}
        return await self.client.post(f"/v1/empenhos/{empenho_id}/returns", json=body, headers=headers)


class BackOffice:
    """An operator with the admin permission (and registry reads)."""

    def __init__(self, svc: Services, client: httpx.AsyncClient, api_key: str) -> None:
        self.svc = svc
        self.client = client
        self.api_key = api_key
        self.headers = {"Authorization": f"Bearer {api_key}"}

    @classmethod
    async def create(cls, svc: Services, client: httpx.AsyncClient) -> BackOffice:
        token, _ = await apikeys.create(svc, frozenset(Permission), name="test back-office")
        return cls(svc, client, token)

    async def key(self, *permissions: int) -> str:
        token, _ = await apikeys.create(self.svc, frozenset(Permission(p) for p in permissions), name="test key")
        return token

    async def create_convenio(
        self, code: str, total_limit: int, tolerance: int = 0, shared: bool = False, expect: int = 201, **extra: Any
    ) -> dict[str, Any]:
        body = {
            "code": code,
            "name": f"EMPRESA {code}",
            "total_limit": total_limit,
            "tolerance": tolerance,
            "shared": shared,
            **extra,
        }
        r = await self.client.post("/v1/convenios", json=body, headers=self.headers)
        assert r.status_code == expect, r.text
        return r.json()

    async def update_convenio(self, code: str, **fields: Any) -> httpx.Response:
        return await self.client.patch(f"/v1/convenios/{code}", json=fields, headers=self.headers)

    async def add_participant(
        self, convenio: str, code: str, limit: int = 0, password: str | None = None, expect: int = 201, **extra: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"code": code, "name": f"CLIENTE {code}", "limit": limit, **extra}
        if password is not None:
            body["password"] = password
        r = await self.client.post(f"/v1/convenios/{convenio}/participants", json=body, headers=self.headers)
        assert r.status_code == expect, r.text
        return r.json()

    async def update_participant(self, convenio: str, code: str, **fields: Any) -> httpx.Response:
        return await self.client.patch(
            f"/v1/convenios/{convenio}/participants/{code}", json=fields, headers=self.headers
        )

    async def add_vehicle(self, convenio: str, participant: str, plate: str, description: str = "") -> httpx.Response:
        return await self.client.post(
            f"/v1/convenios/{convenio}/participants/{participant}/vehicles",
            json={"plate": plate, "description": description},
            headers=self.headers,
        )

    async def set_integration_key(self, key: str) -> httpx.Response:
        return await self.client.put("/v1/integration/key", json={"integration_key": key}, headers=self.headers)


async def mint_proof(svc: Services, convenio: str, participant: str) -> str:
    """A proof as a valid password check leaves it, through the same script, without paying
    argon2's ~30 ms each: for tests that need hundreds of holds at once."""
    import secrets

    from gateway.auth.password_check import CHECK_STALE_MS, result_call, store_proof

    proof = secrets.token_urlsafe(32)
    protocol = svc.protocol()
    # the check opened as password_attempt.lua opens it (it would also want a password hash)
    checks = svc.keys.password_checks(participant)
    await svc.redis.zadd(checks, {protocol: svc.now_ms() + CHECK_STALE_MS})
    expires_at = await store_proof(svc, convenio, participant, proof)
    keys, args = result_call(svc, convenio, participant, protocol, expires_at)
    closed = await svc.run("password_result", keys, args)
    assert closed["ok"], closed
    return proof
