"""Limit-change requests ("Solicitação de Alteração de Limite"), kept in Postgres
(sql/007_limit_requests.sql).

A request asks for a participant's new limit: a suggested limit, a reason and an urgent flag
("Emergencial"). Whoever reads the registry may ask; an operator with the admin permission
approves it, possibly for another amount (the suggestion is only a suggestion), or rejects it
with a reason. Requests are back-office records: nothing at the checkout reads them.

Approving sets the limit through `participants.save_participant` (the registry's Lua script, so
the allocation rule holds and participant.updated says who and why: "limit request <id>: <why>",
which the history links back to the request), then marks the request APPROVED. Under a session
advisory lock on the request id (one decision of a request at a time):

1. the request must be PENDING (else LIMIT_REQUEST_DECIDED); `approving_limit` is recorded and
   committed: from here on the limit may be applied, so a rejection is refused;
2. save_participant, its why the decision's reason or else the request's: a refusal
   (LIMIT_ALLOCATION_EXCEEDED; the script writes nothing then) clears `approving_limit`, the
   request stays PENDING and the error is returned;
3. APPROVED and its history row, in one transaction.

The limit is absolute, so an approval repeated after a crash between 2 and 3 sets the same limit
again (no change, no balance moved) and finishes the request. Each step of a request is also a
REQUEST row of the change history (gateway/registry/history.py), written in the step's transaction.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Awaitable, Callable

import asyncpg

from gateway.audit import log as audit
from gateway.platform import locks
from gateway.platform.clock import iso, iso_or_none, utc
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.ids import ULID, new_limit_request_id
from gateway.platform.locks import Lock
from gateway.platform.services import Services
from gateway.registry import participants
from gateway.registry.schemas import (
    LimitRequestApprove,
    LimitRequestCreate,
    LimitRequestList,
    LimitRequestReject,
    LimitRequestView,
    ParticipantUpdate,
)

#: how an approval's reason names its request (ledger/writer/history.py reads it back)
REQUEST_IN_REASON = re.compile(rf"^limit request (L{ULID})(?:: (.*))?$", re.DOTALL)
#: what participant_save.lua refuses with before it writes anything
_REFUSALS = frozenset({ErrorCode.LIMIT_ALLOCATION_EXCEEDED, ErrorCode.UNKNOWN_CONVENIO, ErrorCode.UNKNOWN_PARTICIPANT})

_INSERT = """
INSERT INTO limit_requests (id, convenio, participant, current_limit, suggested_limit, reason, urgent, status,
                            requested_by, requested_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'PENDING', $8, $9)
RETURNING *"""
_GET = "SELECT * FROM limit_requests WHERE id = $1"
# open requests first, urgent ones first among them, then newest first; a page continues after
# the previous page's last id in that order
_LIST = """
SELECT * FROM limit_requests
WHERE convenio = $1 AND participant = $2 AND ($3::text IS NULL OR status = $3)
  AND ($4::text IS NULL OR (status = 'PENDING', urgent, requested_at, id) <
                           (SELECT status = 'PENDING', urgent, requested_at, id FROM limit_requests WHERE id = $4))
ORDER BY status = 'PENDING' DESC, urgent DESC, requested_at DESC, id DESC
LIMIT $5"""
# every participant's requests in one worklist: urgent first, then oldest first (who waits longest
# is served first); a page continues after the previous page's last id in that order
_WORKLIST = """
SELECT * FROM limit_requests
WHERE status = $1
  AND ($2::text IS NULL OR (NOT urgent, requested_at, id) >
                           (SELECT NOT urgent, requested_at, id FROM limit_requests WHERE id = $2))
ORDER BY urgent DESC, requested_at, id
LIMIT $3"""
_APPROVING = "UPDATE limit_requests SET approving_limit = $2 WHERE id = $1 AND status = 'PENDING'"
_APPROVED = """
UPDATE limit_requests
SET status = 'APPROVED', approved_limit = $2, decided_by = $3, decided_at = $4, decision_reason = $5,
    approving_limit = NULL
WHERE id = $1 AND status = 'PENDING'
RETURNING *"""
_REJECTED = """
UPDATE limit_requests
SET status = 'REJECTED', decided_by = $2, decided_at = $3, decision_reason = $4
WHERE id = $1 AND status = 'PENDING' AND approving_limit IS NULL
RETURNING *"""
_STEP = """
INSERT INTO registry_history (protocol, convenio, participant, kind, at, changed_by, before_amount, after_amount,
                              reason, request_id, request_status, suggested, urgent)
VALUES ($1, $2, $3, 'REQUEST', $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (protocol) DO NOTHING"""
# newest first; a page continues after the previous page's last row (its seq) in that order


def reason_for(request_id: str, why: str) -> str:
    """The reason an approval gives the registry: names the request, then why."""
    return f"limit request {request_id}: {why}"


def _view(r: asyncpg.Record) -> LimitRequestView:
    return LimitRequestView(
        id=r["id"],
        convenio=r["convenio"],
        participant=r["participant"],
        status=r["status"],
        current_limit=r["current_limit"],
        suggested_limit=r["suggested_limit"],
        reason=r["reason"],
        urgent=r["urgent"],
        requested_by=r["requested_by"],
        requested_at=iso(r["requested_at"]),
        decided_by=r["decided_by"],
        decided_at=iso_or_none(r["decided_at"]),
        approved_limit=r["approved_limit"],
        decision_reason=r["decision_reason"],
    )


async def _step(
    conn: asyncpg.Connection,
    r: asyncpg.Record,
    status: str,
    at: datetime.datetime,
    by: str,
    approved: int | None,
    why: str,
) -> None:
    """The history row of one step of request r."""
    step = "REQUESTED" if status == "PENDING" else status
    await conn.execute(
        _STEP,
        f"{r['id']}:{step}",
        r["convenio"],
        r["participant"],
        at,
        by,
        r["current_limit"],
        approved,
        why,
        r["id"],
        status,
        r["suggested_limit"],
        r["urgent"],
    )


# -- requests ---------------------------------------------------------------------------------
async def create(svc: Services, convenio: str, participant: str, body: LimitRequestCreate, by: str) -> LimitRequestView:
    current = await participants.get_participant(svc, convenio, participant)  # 404s with the right code
    at = utc(svc.now_ms())
    async with svc.ledger.connection() as conn, conn.transaction():
        r = await conn.fetchrow(
            _INSERT,
            new_limit_request_id(),
            convenio,
            participant,
            current.limit,
            body.suggested_limit,
            body.reason,
            body.urgent,
            by,
            at,
        )
        await _step(conn, r, "PENDING", at, by, None, body.reason)
        after = {"id": r["id"], "current_limit": current.limit, "suggested_limit": body.suggested_limit}
        await audit.record(
            conn,
            actor=by,
            action="limit_request.created",
            target=_target(r),
            after={**after, "urgent": body.urgent},
            at=at,
        )
    return _view(r)


def _target(r: asyncpg.Record) -> str:
    return f"participant {r['convenio']}/{r['participant']}"


async def get(svc: Services, request_id: str) -> LimitRequestView:
    rows = await svc.ledger.fetch(_GET, request_id)
    if not rows:
        raise ApiError(ErrorCode.UNKNOWN_LIMIT_REQUEST)
    return _view(rows[0])


async def listing(
    svc: Services, convenio: str, participant: str, status: str | None, after: str | None, limit: int
) -> LimitRequestList:
    await participants.get_participant(svc, convenio, participant)
    rows = await svc.ledger.fetch(_LIST, convenio, participant, status, after, limit + 1)
    page = LimitRequestList(requests=[_view(r) for r in rows[:limit]])
    if len(rows) > limit:
        page.next_after = page.requests[-1].id
    return page


async def worklist(
    svc: Services, status: str = "PENDING", after: str | None = None, limit: int = 100
) -> LimitRequestList:
    """The requests in this status of every participant of every convênio, urgent first, then
    oldest first: the back office's queue of requests to decide."""
    rows = await svc.ledger.fetch(_WORKLIST, status, after, limit + 1)
    page = LimitRequestList(requests=[_view(r) for r in rows[:limit]])
    if len(rows) > limit:
        page.next_after = page.requests[-1].id
    return page


async def _pending(conn: asyncpg.Connection, request_id: str) -> asyncpg.Record:
    r = await conn.fetchrow(_GET, request_id)
    if r is None:
        raise ApiError(ErrorCode.UNKNOWN_LIMIT_REQUEST)
    if r["status"] != "PENDING":
        raise ApiError(ErrorCode.LIMIT_REQUEST_DECIDED, status=r["status"])
    return r


Decide = Callable[[asyncpg.Connection], Awaitable[LimitRequestView]]


async def _locked(svc: Services, request_id: str, decide: Decide) -> LimitRequestView:
    async with svc.ledger.connection() as conn, locks.held(conn, Lock.LIMIT_REQUEST, request_id):
        return await decide(conn)


async def approve(svc: Services, request_id: str, body: LimitRequestApprove, by: str) -> LimitRequestView:
    async def decide(conn: asyncpg.Connection) -> LimitRequestView:
        r = await _pending(conn, request_id)
        limit = body.limit if body.limit is not None else r["suggested_limit"]
        await conn.execute(_APPROVING, request_id, limit)
        why = body.reason or r["reason"]
        try:
            await participants.save_participant(
                svc,
                r["convenio"],
                r["participant"],
                ParticipantUpdate(limit=limit),
                by=by,
                reason=reason_for(request_id, why),
            )
        except ApiError as exc:
            if exc.code in _REFUSALS:  # the script's checks, before any write: nothing was applied
                await conn.execute(_APPROVING, request_id, None)
            raise
        at = utc(svc.now_ms())
        async with conn.transaction():
            done = await conn.fetchrow(_APPROVED, request_id, limit, by, at, body.reason or "")
            if done is None:  # cannot happen under the lock; never write a step for it
                raise ApiError(ErrorCode.LIMIT_REQUEST_DECIDED)
            await _step(conn, done, "APPROVED", at, by, limit, body.reason or "")
            await audit.record(
                conn,
                actor=by,
                action="limit_request.approved",
                target=_target(done),
                before={"id": request_id, "status": "PENDING", "suggested_limit": r["suggested_limit"]},
                after={"id": request_id, "status": "APPROVED", "limit": limit, "reason": body.reason or ""},
                at=at,
            )
        return _view(done)

    return await _locked(svc, request_id, decide)


async def reject(svc: Services, request_id: str, body: LimitRequestReject, by: str) -> LimitRequestView:
    async def decide(conn: asyncpg.Connection) -> LimitRequestView:
        r = await _pending(conn, request_id)
        if r["approving_limit"] is not None:
            raise ApiError(
                ErrorCode.LIMIT_REQUEST_DECIDED,
                f"An approval for {r['approving_limit']} centavos was started and may have set the limit; "
                "approve the request again to finish it.",
                status="PENDING",
            )
        at = utc(svc.now_ms())
        async with conn.transaction():
            done = await conn.fetchrow(_REJECTED, request_id, by, at, body.reason)
            if done is None:
                raise ApiError(ErrorCode.LIMIT_REQUEST_DECIDED)
            await _step(conn, done, "REJECTED", at, by, None, body.reason)
            await audit.record(
                conn,
                actor=by,
                action="limit_request.rejected",
                target=_target(done),
                before={"id": request_id, "status": "PENDING", "suggested_limit": r["suggested_limit"]},
                after={"id": request_id, "status": "REJECTED", "reason": body.reason},
                at=at,
            )
        return _view(done)

    return await _locked(svc, request_id, decide)


# -- the history ------------------------------------------------------------------------------
