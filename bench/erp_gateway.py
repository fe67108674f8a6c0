"""Baseline: the ERP's way, served like ours. The terminal endpoints of CONTRACT.md (limit, hold,
commit, cancel) behind our own edge (gateway/platform/http: the same key check, body decoding,
errors, metrics and fast path, uvicorn with uvloop and httptools, one worker), but every decision
is a Postgres transaction the way the seeds' ERPs keep a balance: the pool's balance in one row
(the convênio's for a shared pool, the participant's otherwise), locked with SELECT ... FOR UPDATE,
then UPDATE, INSERT the empenho, COMMIT. The proof is a row consumed (DELETE ... RETURNING) and
the Idempotency-Key's answer a row inserted, both in the hold's transaction.

    ERP_DATABASE_URL=postgresql://... python -m bench.erp_gateway --port 8001

Settings from the environment: ERP_DATABASE_URL (required), ERP_POOL_SIZE (connections, 64),
ERP_HOLD_TTL (s, 10: the bench's), ERP_APIKEY_CACHE (s, 5: ours). bench/erp.py measures it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from gateway.auth import apikeys
from gateway.auth.apikeys import ApiKey
from gateway.auth.permissions import Permission
from gateway.holds.lifecycle import REPLAYED, fingerprint, key_digest
from gateway.holds.schemas import CancelRequest, CommitRequest, EmpenhoHeld, EmpenhoOutcome, EmpenhoRequest, LimitView
from gateway.platform.clock import rfc3339, system_ms
from gateway.platform.digests import digest
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.http import idempotency, operations
from gateway.platform.http.edge import wrap
from gateway.platform.http.endpoint import Call, Endpoint, Handler, Reply
from gateway.platform.http.fast_path import FastPathApp
from gateway.platform.http.header_limit import HeaderLimit
from gateway.platform.ids import new_empenho_id, new_protocol

log = logging.getLogger("bench.erp_gateway")
E = ErrorCode
_encode = msgspec.json.Encoder().encode

#: the ERP's tables; `pool` holds every balance: holder '' is a shared convênio's, else a participant's
SCHEMA = """
CREATE TABLE api_key (
    digest text PRIMARY KEY, id text NOT NULL, permissions text NOT NULL,
    revoked boolean NOT NULL DEFAULT false, last_used_at timestamptz
);
CREATE TABLE convenio (
    code text PRIMARY KEY, shared boolean NOT NULL, status text NOT NULL DEFAULT 'ACTIVE',
    tolerance bigint NOT NULL DEFAULT 0
);
CREATE TABLE participant (
    convenio text NOT NULL REFERENCES convenio, code text NOT NULL, status text NOT NULL DEFAULT 'ACTIVE',
    PRIMARY KEY (convenio, code)
);
CREATE TABLE pool (
    convenio text NOT NULL REFERENCES convenio, holder text NOT NULL, credit_limit bigint NOT NULL,
    balance bigint NOT NULL, reserved bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    PRIMARY KEY (convenio, holder)
);
CREATE TABLE proof (
    digest text PRIMARY KEY, convenio text NOT NULL, participant text NOT NULL, expires_at timestamptz NOT NULL
);
CREATE TABLE empenho (
    id text PRIMARY KEY, convenio text NOT NULL, participant text NOT NULL, holder text NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0), status text NOT NULL,
    terminal text NOT NULL, store text NOT NULL, sale text NOT NULL, protocol text NOT NULL, api_key text NOT NULL,
    created_at timestamptz NOT NULL, expires_at timestamptz NOT NULL,
    committed_amount bigint, coupon text, commit_result text, cancel_reason text, cancel_result text,
    ended_at timestamptz
);
CREATE INDEX empenho_pending ON empenho (expires_at) WHERE status = 'PENDING';
CREATE TABLE idempotency (
    api_key text NOT NULL, key text NOT NULL, fingerprint text NOT NULL, status int NOT NULL, body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (api_key, key)
);
"""

KEY_LOOKUP = "UPDATE api_key SET last_used_at = now() WHERE digest = $1 AND NOT revoked RETURNING id, permissions"
LIMIT = """
SELECT c.status, c.tolerance, c.shared, p.status AS participant_status, b.credit_limit, b.balance, b.reserved
FROM convenio c
LEFT JOIN participant p ON p.convenio = c.code AND p.code = $2
LEFT JOIN pool b ON b.convenio = c.code AND b.holder = CASE WHEN c.shared THEN '' ELSE p.code END
WHERE c.code = $1
"""
CONSUME_PROOF = (
    "DELETE FROM proof WHERE digest = $1 AND convenio = $2 AND participant = $3 AND expires_at > now() RETURNING true"
)
LOCK_POOL = """
SELECT c.status, p.status AS participant_status, c.tolerance, b.holder, b.balance, b.reserved
FROM participant p
JOIN convenio c ON c.code = p.convenio
JOIN pool b ON b.convenio = p.convenio AND b.holder = CASE WHEN c.shared THEN '' ELSE p.code END
WHERE p.convenio = $1 AND p.code = $2
FOR UPDATE OF b
"""
RESERVE = "UPDATE pool SET reserved = reserved + $3 WHERE convenio = $1 AND holder = $2"
PLACE = """
INSERT INTO empenho (id, convenio, participant, holder, amount, status, terminal, store, sale, protocol, api_key,
                     created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, 'PENDING', $6, $7, $8, $9, $10, $11, $12)
"""
REMEMBER = "INSERT INTO idempotency (api_key, key, fingerprint, status, body) VALUES ($1, $2, $3, $4, $5)"
REMEMBER_DECLINE = REMEMBER + " ON CONFLICT DO NOTHING RETURNING true"
REPLAY = "SELECT fingerprint, status, body FROM idempotency WHERE api_key = $1 AND key = $2"
LOCK_EMPENHO = """
SELECT id, convenio, holder, amount, status, coupon, committed_amount, commit_result, cancel_result,
       expires_at <= now() AS overdue
FROM empenho WHERE id = $1 FOR UPDATE
"""
# the balance row's UPDATE takes its row lock itself (commit and cancel check nothing on it)
SETTLE = (
    "UPDATE pool SET reserved = reserved - $3, balance = balance - $4 WHERE convenio = $1 AND holder = $2 "
    "RETURNING balance"
)
RELEASE = "UPDATE pool SET reserved = reserved - $3 WHERE convenio = $1 AND holder = $2 RETURNING balance"
REFUND = "UPDATE pool SET balance = balance + $3 WHERE convenio = $1 AND holder = $2 RETURNING balance"
COMMITTED = (
    "UPDATE empenho SET status = 'COMMITTED', committed_amount = $2, coupon = $3, commit_result = $4, "
    "ended_at = now() WHERE id = $1"
)
CANCELLED = "UPDATE empenho SET status = $2, cancel_reason = $3, cancel_result = $4, ended_at = now() WHERE id = $1"
EXPIRED = "UPDATE empenho SET status = 'EXPIRED', ended_at = now() WHERE id = $1"
DUE = "SELECT id FROM empenho WHERE status = 'PENDING' AND expires_at <= now() ORDER BY expires_at LIMIT 500"


@dataclass
class Erp:
    """What every handler works through (it stands where our `Services` does in a `Call`)."""

    pool: asyncpg.Pool
    hold_ttl_s: int


class KeyCache(apikeys.KeyCache):
    """API keys by their SHA-256 digest in Postgres, each looked up once per cache time: ours
    (gateway/auth/apikeys.py) with the lookup in Postgres instead of Redis."""

    def __init__(self, pool: asyncpg.Pool, ttl_s: float) -> None:
        super().__init__(ttl_s, system_ms)
        self._pool = pool

    async def _lookup(self, d: str) -> ApiKey | None:
        row = await self._pool.fetchrow(KEY_LOOKUP, d)
        if row is None:
            return None
        codes = frozenset(Permission(int(c)) for c in row["permissions"].split(",") if c)
        return ApiKey(row["id"], codes, lineage=row["id"])


def _at(ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)


def _raw(text: str) -> msgspec.Raw:
    """A stored JSON answer, sent as it was stored."""
    return msgspec.Raw(text.encode())


# -- the limit query ----------------------------------------------------------------------------------
async def get_limit(c: Call) -> Reply:
    erp: Erp = c.svc  # type: ignore[assignment]
    convenio, participant = c.path["convenio"], c.path["participant"]
    row = await erp.pool.fetchrow(LIMIT, convenio, participant)
    if row is None:
        raise ApiError(E.UNKNOWN_CONVENIO)
    if row["participant_status"] is None:
        raise ApiError(E.UNKNOWN_PARTICIPANT)
    status = row["status"] if row["status"] != "ACTIVE" else row["participant_status"]
    return Reply(
        LimitView(
            convenio=convenio,
            participant=participant,
            status=status,
            shared=row["shared"],
            limit=row["credit_limit"],
            tolerance=row["tolerance"],
            balance=row["balance"],
            reserved=row["reserved"],
            available=row["balance"] + row["tolerance"] - row["reserved"],
        )
    )


# -- placing an empenho -------------------------------------------------------------------------------
async def _decline(conn: asyncpg.Connection, req: EmpenhoRequest, code: ErrorCode, protocol: str) -> ApiError:
    """The decline of a hold whose proof or pool was not found, in our order of checks: an unknown
    convênio or participant, a blocked one, then `code` (the proof's)."""
    row = await conn.fetchrow(LIMIT, req.convenio, req.participant)
    if row is None:
        return ApiError(E.UNKNOWN_CONVENIO, protocol=protocol)
    if row["participant_status"] is None:
        return ApiError(E.UNKNOWN_PARTICIPANT, protocol=protocol)
    available = row["balance"] + row["tolerance"] - row["reserved"]
    if row["status"] != "ACTIVE":
        code = E.CONVENIO_BLOCKED
    elif row["participant_status"] != "ACTIVE":
        code = E.PARTICIPANT_BLOCKED
    return ApiError(code, available=available, protocol=protocol)


async def _hold(erp: Erp, conn: asyncpg.Connection, key_id: str, req: EmpenhoRequest) -> bytes:
    """Inside the hold's transaction: its 201 body, or its decline raised (which rolls it back)."""
    protocol = new_protocol()
    if req.proof is None:
        raise await _decline(conn, req, E.PASSWORD_PROOF_REQUIRED, protocol)
    if await conn.fetchval(CONSUME_PROOF, digest(req.proof), req.convenio, req.participant) is None:
        raise await _decline(conn, req, E.PASSWORD_PROOF_INVALID, protocol)
    row = await conn.fetchrow(LOCK_POOL, req.convenio, req.participant)
    if row is None:
        raise await _decline(conn, req, E.PASSWORD_PROOF_INVALID, protocol)
    available = row["balance"] + row["tolerance"] - row["reserved"]
    if row["status"] != "ACTIVE":
        raise ApiError(E.CONVENIO_BLOCKED, available=available, protocol=protocol)
    if row["participant_status"] != "ACTIVE":
        raise ApiError(E.PARTICIPANT_BLOCKED, available=available, protocol=protocol)
    if req.vehicle is not None:  # this baseline keeps no vehicles
        raise ApiError(E.VEHICLE_NOT_REGISTERED, available=available, protocol=protocol)
    if req.amount > available:
        raise ApiError(E.INSUFFICIENT_LIMIT, available=available, protocol=protocol)
    holder = row["holder"]
    await conn.execute(RESERVE, req.convenio, holder, req.amount)
    now = time.time_ns() // 1_000_000
    expires = now + erp.hold_ttl_s * 1000
    eid = new_empenho_id(0)
    await conn.execute(
        PLACE,
        eid,
        req.convenio,
        req.participant,
        holder,
        req.amount,
        req.terminal,
        req.store,
        req.sale,
        protocol,
        key_id,
        _at(now),
        _at(expires),
    )
    held = EmpenhoHeld(eid, "PENDING", req.amount, available - req.amount, rfc3339(expires), protocol)
    return _encode(held)


async def _replay(conn: asyncpg.Connection, key_id: str, idem: str, fp: str) -> Reply:
    row = await conn.fetchrow(REPLAY, key_id, idem)
    if row is None or row["fingerprint"] != fp:
        raise ApiError(E.IDEMPOTENCY_CONFLICT)
    return Reply(_raw(row["body"]), row["status"], dict(REPLAYED))


async def place_empenho(c: Call) -> Reply:
    """One transaction: consume the proof, lock the pool's row, reserve, insert the empenho and the
    Idempotency-Key's answer, commit. A decline rolls back (the proof stays usable, as ours) and its
    answer is stored on its own; a key stored already (the unique key) replays its answer."""
    erp: Erp = c.svc  # type: ignore[assignment]
    req: EmpenhoRequest = c.body
    idem = key_digest(idempotency.idempotency_key(c))
    fp = fingerprint(b"", req)
    key_id = c.key_id
    async with erp.pool.acquire() as conn:
        try:
            async with conn.transaction():
                body = await _hold(erp, conn, key_id, req)
                await conn.execute(REMEMBER, key_id, idem, fp, 201, body.decode())
            return Reply(msgspec.Raw(body), 201)
        except ApiError as declined:
            answer = _encode(declined.body()).decode()
            if await conn.fetchval(REMEMBER_DECLINE, key_id, idem, fp, declined.status, answer):
                raise
        except asyncpg.UniqueViolationError:
            pass
        return await _replay(conn, key_id, idem, fp)


# -- commit, cancel, expiry ----------------------------------------------------------------------------
async def _expire(conn: asyncpg.Connection, e: asyncpg.Record) -> ApiError:
    """Expire a PENDING empenho past its time (locked by the caller): its amount is released."""
    await conn.execute(RELEASE, e["convenio"], e["holder"], e["amount"])
    await conn.execute(EXPIRED, e["id"])
    return ApiError(E.EMPENHO_NOT_PENDING, status="EXPIRED", protocol=new_protocol())


async def commit_empenho(c: Call) -> Reply:
    erp: Erp = c.svc  # type: ignore[assignment]
    req: CommitRequest = c.body
    refusal = None
    async with erp.pool.acquire() as conn, conn.transaction():
        e = await conn.fetchrow(LOCK_EMPENHO, c.path["id"])
        if e is None:
            raise ApiError(E.UNKNOWN_EMPENHO)
        amount = e["amount"] if req.amount is None else req.amount
        if e["status"] == "COMMITTED":
            if e["coupon"] == req.coupon and e["committed_amount"] == amount:
                return Reply(_raw(e["commit_result"]), 200, dict(REPLAYED))
            raise ApiError(E.COMMIT_CONFLICT, status=e["status"], protocol=new_protocol())
        if e["status"] == "PENDING" and e["overdue"]:
            refusal = await _expire(conn, e)
        elif e["status"] != "PENDING":
            raise ApiError(E.EMPENHO_NOT_PENDING, status=e["status"], protocol=new_protocol())
        elif amount > e["amount"]:
            raise ApiError(E.COMMIT_EXCEEDS_HOLD, held=e["amount"], protocol=new_protocol())
        else:
            balance = await conn.fetchval(SETTLE, e["convenio"], e["holder"], e["amount"], amount)
            body = _encode(EmpenhoOutcome(e["id"], "COMMITTED", amount, balance, new_protocol()))
            await conn.execute(COMMITTED, e["id"], amount, req.coupon, body.decode())
    if refusal is not None:  # the expiry is committed, the commit refused
        raise refusal
    return Reply(msgspec.Raw(body), 200)


async def cancel_empenho(c: Call) -> Reply:
    """A PENDING empenho is released (CANCELLED), a COMMITTED one reversed (REVERSED)."""
    erp: Erp = c.svc  # type: ignore[assignment]
    req: CancelRequest = c.body
    refusal = None
    async with erp.pool.acquire() as conn, conn.transaction():
        e = await conn.fetchrow(LOCK_EMPENHO, c.path["id"])
        if e is None:
            raise ApiError(E.UNKNOWN_EMPENHO)
        if e["status"] in ("CANCELLED", "REVERSED"):
            return Reply(_raw(e["cancel_result"]), 200, dict(REPLAYED))
        if e["status"] == "PENDING" and e["overdue"]:
            refusal = await _expire(conn, e)
        elif e["status"] == "PENDING":
            status, amount = "CANCELLED", e["amount"]
            balance = await conn.fetchval(RELEASE, e["convenio"], e["holder"], amount)
        elif e["status"] == "COMMITTED":
            status, amount = "REVERSED", e["committed_amount"]
            balance = await conn.fetchval(REFUND, e["convenio"], e["holder"], amount)
        else:
            raise ApiError(E.EMPENHO_NOT_PENDING, status=e["status"], protocol=new_protocol())
        if refusal is None:
            body = _encode(EmpenhoOutcome(e["id"], status, amount, balance, new_protocol()))
            await conn.execute(CANCELLED, e["id"], status, req.reason or "", body.decode())
    if refusal is not None:
        raise refusal
    return Reply(msgspec.Raw(body), 200)


async def sweep(erp: Erp, stopping: asyncio.Event, interval_s: float = 1.0) -> None:
    """Expire what is past its time, each in its own transaction (as ours sweeps once a second)."""
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval_s)
        try:
            async with erp.pool.acquire() as conn:
                for due in await conn.fetch(DUE):
                    async with conn.transaction():
                        e = await conn.fetchrow(LOCK_EMPENHO, due["id"])
                        if e is not None and e["status"] == "PENDING" and e["overdue"]:
                            await _expire(conn, e)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            log.warning("sweep failed: %s", exc)


# -- the app --------------------------------------------------------------------------------------------
def _unavailable_as_503(handler: Handler) -> Handler:
    async def run(c: Call) -> Reply:
        try:
            return await handler(c)
        except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError) as exc:
            raise ApiError(E.SERVICE_UNAVAILABLE, retry_after=1) from exc

    return run


PARTICIPANT = "/v1/convenios/{convenio}/participants/{participant}"
HOLDS = frozenset({Permission.EMPENHO})
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        PARTICIPANT + "/limit",
        "limit",
        "Limit query.",
        _unavailable_as_503(get_limit),
        LimitView,
        permissions=frozenset({Permission.LIMIT_QUERY}),
    ),
    Endpoint(
        "POST",
        "/v1/empenhos",
        "empenho_hold",
        "Place an empenho.",
        _unavailable_as_503(place_empenho),
        EmpenhoHeld,
        status=201,
        permissions=HOLDS,
        request=EmpenhoRequest,
        headers=(idempotency.HEADER,),
    ),
    Endpoint(
        "POST",
        "/v1/empenhos/{id}/commit",
        "empenho_commit",
        "Commit an empenho.",
        _unavailable_as_503(commit_empenho),
        EmpenhoOutcome,
        permissions=HOLDS,
        request=CommitRequest,
    ),
    Endpoint(
        "POST",
        "/v1/empenhos/{id}/cancel",
        "empenho_cancel",
        "Cancel or reverse an empenho.",
        _unavailable_as_503(cancel_empenho),
        EmpenhoOutcome,
        permissions=frozenset({Permission.EMPENHO_CANCEL}),
        request=CancelRequest,
        body_optional=True,
    ),
    *(ep for ep in operations.ENDPOINTS if ep.path == "/healthz"),
)


def create_app() -> FastPathApp:
    """Application factory (uvicorn --factory); settings from the environment (module docstring)."""
    url = os.environ["ERP_DATABASE_URL"]
    size = int(os.environ.get("ERP_POOL_SIZE", "64"))
    hold_ttl_s = int(os.environ.get("ERP_HOLD_TTL", "10"))
    cache_s = float(os.environ.get("ERP_APIKEY_CACHE", "5"))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool: Any = await asyncpg.create_pool(url, min_size=size, max_size=size)
        erp = Erp(pool, hold_ttl_s)
        app.state.services = erp
        app.state.apikeys = KeyCache(pool, cache_s)
        stopping = asyncio.Event()
        sweeper = asyncio.create_task(sweep(erp, stopping))
        try:
            yield
        finally:
            stopping.set()
            await asyncio.wait({sweeper}, timeout=2)
            sweeper.cancel()
            await pool.close()

    wrapped = [(ep, wrap(ep)) for ep in ENDPOINTS]
    return FastPathApp(
        [(ep.method, ep.path, fn.asgi) for ep, fn in wrapped],
        routes=[Route(ep.path, fn.endpoint, methods=[ep.method], name=ep.name) for ep, fn in wrapped],
        lifespan=lifespan,
        middleware=[Middleware(HeaderLimit)],
    )


def main(argv: list[str] | None = None) -> None:
    """Serve it as `convenio serve` serves ours (gateway/app.py `main`): uvicorn, uvloop, our
    httptools protocol, no access log, no proxy headers."""
    ap = argparse.ArgumentParser(prog="bench.erp_gateway", description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8001)
    ap.add_argument("--log-level", default="warning")
    args = ap.parse_args(argv)
    uvicorn.run(
        "bench.erp_gateway:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=1,
        loop="uvloop",
        http="gateway.platform.http.header_limit:HeadLimitedHttpToolsProtocol",
        access_log=False,
        proxy_headers=False,
        log_level=args.log_level,
    )


if __name__ == "__main__":
    main()
