"""The checkout's endpoints: the limit query, and empenhos placed, read, committed and cancelled.
Handlers stay thin: decode (done by the edge), call one domain function, encode."""

from __future__ import annotations

from gateway.auth.permissions import EMPENHO_READ, Permission
from gateway.holds import empenhos, limits
from gateway.holds.schemas import (
    CancelRequest,
    CommitRequest,
    ConveniosOfParticipant,
    EmpenhoHeld,
    EmpenhoOutcome,
    EmpenhoRequest,
    EmpenhoView,
    LimitView,
)
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.http import idempotency
from gateway.platform.http.endpoint import Call, Endpoint, Link, Reply
from gateway.stores import scope

E = ErrorCode
PARTICIPANT = "/v1/convenios/{convenio}/participants/{participant}"
#: what an empenho's answer (placed, committed, cancelled) leads to: the empenho, its next steps, the decision
_ID = (("id", "$response.body#/id"),)
EMPENHO_LINKS = (
    Link("read", "empenho_get", _ID, description="The empenho with its status history."),
    Link("commit", "empenho_commit", _ID, body={"coupon": "CUPOM-000123"}, description="The coupon was processed."),
    Link("cancel", "empenho_cancel", _ID, description="Release (PENDING) or reverse (COMMITTED) it."),
    Link("decision", "decision_get", (("protocol", "$response.body#/protocol"),), description="What was decided."),
)


async def get_limit(c: Call) -> Reply:
    return Reply(await limits.limit_of(c.svc, c.path["convenio"], c.path["participant"]))


async def get_convenios_of(c: Call) -> Reply:
    return Reply(ConveniosOfParticipant(await limits.convenios_of(c.svc, c.path["participant"])))


async def place_empenho(c: Call) -> Reply:
    await scope.check(c.svc, c.key, c.body.store, c.body.terminal)
    return (await empenhos.hold(c.svc, c.key_id, idempotency.idempotency_key(c), c.body)).reply()


async def commit_empenho(c: Call) -> Reply:
    return (await empenhos.commit(c.svc, c.path["id"], c.body, scope.limits(c.key))).reply()


async def cancel_empenho(c: Call) -> Reply:
    return (await empenhos.cancel(c.svc, c.path["id"], c.body, scope=scope.limits(c.key))).reply()


async def get_empenho(c: Call) -> Reply:
    view = await empenhos.get(c.svc, c.path["id"])
    if not scope.owns(c.key, view.store, view.terminal):
        raise ApiError(ErrorCode.STORE_NOT_ALLOWED)
    return Reply(view)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        PARTICIPANT + "/limit",
        "limit",
        "Limit query: what the participant may still spend.",
        get_limit,
        LimitView,
        permissions=frozenset({Permission.LIMIT_QUERY}),
        errors=(E.UNKNOWN_CONVENIO, E.UNKNOWN_PARTICIPANT),
    ),
    Endpoint(
        "GET",
        "/v1/participants/{participant}/convenios",
        "convenios_of",
        "Every convênio the customer takes part in, with its limit.",
        get_convenios_of,
        ConveniosOfParticipant,
        permissions=frozenset({Permission.LIMIT_QUERY}),
        errors=(E.UNKNOWN_PARTICIPANT,),
    ),
    Endpoint(
        "POST",
        "/v1/empenhos",
        "empenho_hold",
        "Place an empenho (authorization hold) for a sale.",
        place_empenho,
        EmpenhoHeld,
        status=201,
        permissions=frozenset({Permission.EMPENHO}),
        request=EmpenhoRequest,
        errors=(
            E.INSUFFICIENT_LIMIT,
            E.PARTICIPANT_BLOCKED,
            E.CONVENIO_BLOCKED,
            E.PASSWORD_PROOF_REQUIRED,
            E.PASSWORD_PROOF_INVALID,
            E.VEHICLE_NOT_REGISTERED,
            E.ORDER_LIMIT_EXCEEDED,
            E.DAILY_LIMIT_EXCEEDED,
            E.MONTHLY_LIMIT_EXCEEDED,
            E.UNKNOWN_CONVENIO,
            E.UNKNOWN_PARTICIPANT,
            E.STORE_NOT_ACCEPTED,
            E.STORE_NOT_ALLOWED,
            E.IDEMPOTENCY_CONFLICT,
        ),
        headers=(idempotency.HEADER,),
        links=EMPENHO_LINKS,
    ),
    Endpoint(
        "GET",
        "/v1/empenhos/{id}",
        "empenho_get",
        "An empenho with its status history and protocols.",
        get_empenho,
        EmpenhoView,
        permissions=EMPENHO_READ,
        errors=(E.UNKNOWN_EMPENHO, E.LEDGER_UNAVAILABLE, E.STORE_NOT_ALLOWED),
    ),
    Endpoint(
        "POST",
        "/v1/empenhos/{id}/commit",
        "empenho_commit",
        "Commit (post) the empenho: debit all or part of the held amount, release the rest.",
        commit_empenho,
        EmpenhoOutcome,
        permissions=frozenset({Permission.EMPENHO}),
        request=CommitRequest,
        errors=(
            E.UNKNOWN_EMPENHO,
            E.EMPENHO_NOT_PENDING,
            E.COMMIT_CONFLICT,
            E.COMMIT_EXCEEDS_HOLD,
            E.STORE_NOT_ALLOWED,
        ),
        links=(EMPENHO_LINKS[0], EMPENHO_LINKS[2], EMPENHO_LINKS[3]),
    ),
    Endpoint(
        "POST",
        "/v1/empenhos/{id}/cancel",
        "empenho_cancel",
        "Cancel: a PENDING empenho is released (CANCELLED), a COMMITTED one reversed (REVERSED: what its returns "
        "left of it goes back to the balance).",
        cancel_empenho,
        EmpenhoOutcome,
        permissions=frozenset({Permission.EMPENHO_CANCEL}),
        request=CancelRequest,
        body_optional=True,
        errors=(E.UNKNOWN_EMPENHO, E.EMPENHO_NOT_PENDING, E.FULLY_RETURNED, E.LEDGER_UNAVAILABLE, E.STORE_NOT_ALLOWED),
        links=(EMPENHO_LINKS[0], EMPENHO_LINKS[3]),
    ),
)
