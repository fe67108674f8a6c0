"""The endpoint table: every path of the API, its permission, its types and its errors.
Handlers stay thin: decode (done by the wrapper), call one domain function, encode."""

from __future__ import annotations

import datetime
import re
from typing import Any

import msgspec

from gateway import empenhos, limits, registry
from gateway.apikeys import set_integration_key
from gateway.errors import ApiError, ErrorCode
from gateway.http import PATH_PARAMS, Call, Endpoint, Reply, invalid, page_size, who
from gateway.password_check import verify_password
from gateway.permissions import READ_REGISTRY, Permission
from gateway.schemas import (
    CancelRequest,
    CommitRequest,
    ConvenioCreate,
    ConveniosOfParticipant,
    ConvenioUpdate,
    ConvenioView,
    DecisionView,
    Done,
    DuplicataList,
    DuplicataView,
    EmpenhoHeld,
    EmpenhoOutcome,
    EmpenhoRequest,
    EmpenhoView,
    IntegrationKeySet,
    LimitView,
    MovementList,
    ParticipantCreate,
    ParticipantList,
    ParticipantUpdate,
    ParticipantView,
    PasswordCheck,
    PasswordResult,
    SettleRequest,
    VehicleList,
    VehicleSave,
    VehicleView,
)

E = ErrorCode
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
ADMIN = frozenset({Permission.ADMIN})
EMPENHO_READ = frozenset({Permission.EMPENHO, Permission.EMPENHO_CANCEL}) | READ_REGISTRY
#: whoever can ask for a decision can look it up by its protocol
DECISION_READ = EMPENHO_READ | {Permission.LIMIT_QUERY, Permission.PASSWORD_CHECK}
MOVEMENTS_READ = frozenset({Permission.SALES_READ, Permission.ADMIN})


def _replayed(replayed: bool) -> dict[str, str]:
    return dict(empenhos.REPLAYED) if replayed else {}


# --- terminal ------------------------------------------------------------------------------
async def get_limit(c: Call) -> Reply:
    return Reply(await limits.limit_of(c.gw, c.path["convenio"], c.path["participant"]))


async def get_convenios_of(c: Call) -> Reply:
    return Reply(ConveniosOfParticipant(await limits.convenios_of(c.gw, c.path["participant"])))


async def check_password(c: Call) -> Reply:
    return Reply(await verify_password(c.gw, c.path["convenio"], c.path["participant"], c.body))


async def place_empenho(c: Call) -> Reply:
    idem = c.request.headers.get("idempotency-key")
    if idem is None or not _IDEMPOTENCY_KEY.match(idem):
        raise invalid("Idempotency-Key", "The Idempotency-Key header is required: 1 to 128 visible ASCII characters.")
    assert c.key is not None
    d = await empenhos.hold(c.gw, c.key.id, idem, c.body)
    return Reply(d.body, d.status, _replayed(d.replayed))


async def commit_empenho(c: Call) -> Reply:
    d = await empenhos.commit(c.gw, c.path["id"], c.body)
    return Reply(d.body, d.status, _replayed(d.replayed))


async def cancel_empenho(c: Call) -> Reply:
    d = await empenhos.cancel(c.gw, c.path["id"], c.body)
    return Reply(d.body, d.status, _replayed(d.replayed))


async def get_empenho(c: Call) -> Reply:
    return Reply(await empenhos.get(c.gw, c.path["id"]))


async def get_decision(c: Call) -> Reply:
    return Reply(await c.gw.ledger.decision(c.path["protocol"]))


async def list_movements(c: Call) -> Reply:
    q = c.request.query_params
    participant = q.get("participant")
    if participant is not None and not PATH_PARAMS["participant"].fullmatch(participant):
        raise invalid("participant", "`participant` is not a valid code.")
    after = q.get("after", "0")
    if not re.fullmatch(r"[0-9]{1,18}", after):
        raise invalid("after", "`after` must be the `next_after` of the previous page.")
    return Reply(
        await c.gw.ledger.movements(
            c.path["convenio"],
            participant,
            _instant(q, "from"),
            _instant(q, "to"),
            int(after),
            page_size(c),
        )
    )


def _instant(q: Any, name: str) -> datetime.datetime | None:
    """An RFC 3339 instant, or a date (midnight UTC)."""
    raw = q.get(name)
    if raw is None:
        return None
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw):
            return datetime.datetime.fromisoformat(raw).replace(tzinfo=datetime.UTC)
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2})", raw):
            raise ValueError(raw)
        value = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(datetime.UTC)
    except (ValueError, OverflowError):
        raise invalid(name, f"`{name}` must be a date (2026-11-01) or an RFC 3339 instant.") from None
    return value


# --- back-office ---------------------------------------------------------------------------
async def create_convenio(c: Call) -> Reply:
    return Reply(await registry.save_convenio(c.gw, c.body.code, c.body, by=who(c)), 201)


async def update_convenio(c: Call) -> Reply:
    return Reply(await registry.save_convenio(c.gw, c.path["convenio"], c.body, by=who(c)))


async def get_convenio(c: Call) -> Reply:
    return Reply(await registry.get_convenio(c.gw, c.path["convenio"]))


async def create_participant(c: Call) -> Reply:
    return Reply(await registry.save_participant(c.gw, c.path["convenio"], c.body.code, c.body, by=who(c)), 201)


async def update_participant(c: Call) -> Reply:
    return Reply(await registry.save_participant(c.gw, c.path["convenio"], c.path["participant"], c.body, by=who(c)))


async def get_participant(c: Call) -> Reply:
    return Reply(await registry.get_participant(c.gw, c.path["convenio"], c.path["participant"]))


async def list_participants(c: Call) -> Reply:
    q = c.request.query_params
    after = q.get("after", "")
    return Reply(await registry.list_participants(c.gw, c.path["convenio"], after, page_size(c)))


async def save_vehicle(c: Call) -> Reply:
    created, view = await registry.save_vehicle(c.gw, c.path["convenio"], c.path["participant"], c.body)
    return Reply(view, 201 if created else 200)


async def delete_vehicle(c: Call) -> Reply:
    await registry.delete_vehicle(c.gw, c.path["convenio"], c.path["participant"], c.path["plate"])
    return Reply(Done())


async def list_vehicles(c: Call) -> Reply:
    return Reply(await registry.list_vehicles(c.gw, c.path["convenio"], c.path["participant"]))


async def put_integration_key(c: Call) -> Reply:
    await set_integration_key(c.gw, c.body.integration_key, only_if_unset=False)
    return Reply(Done())


# -- duplicatas: the batches live in ledger/; these are the back-office's window on them ------------
def _duplicata_view(view: dict[str, Any]) -> DuplicataView:
    return msgspec.convert(view, DuplicataView)


async def list_duplicatas(c: Call) -> Reply:
    from ledger import duplicatas

    q = c.request.query_params
    status = q.get("status")
    if status not in (None, "OPEN", "PAID"):
        raise invalid("status", "`status` must be OPEN or PAID.")
    if not await c.gw.redis.exists(c.gw.keys.convenio(c.path["convenio"])):
        raise ApiError(ErrorCode.UNKNOWN_CONVENIO)
    async with c.gw.ledger.connection() as conn:
        rows = await duplicatas.listing(conn, c.path["convenio"], status, page_size(c))
    return Reply(DuplicataList(duplicatas=[_duplicata_view(v) for v in rows]))


async def get_duplicata(c: Call) -> Reply:
    from ledger import duplicatas

    async with c.gw.ledger.connection() as conn:
        try:
            view = await duplicatas.get(conn, c.path["duplicata"], items=True)
        except duplicatas.UnknownDuplicata:
            raise ApiError(ErrorCode.UNKNOWN_DUPLICATA) from None
    return Reply(_duplicata_view(view))


async def settle_duplicata(c: Call) -> Reply:
    from ledger import duplicatas, jobs

    assert c.key is not None
    now = datetime.datetime.fromtimestamp(c.gw.now_ms() / 1000, datetime.UTC)
    note = (c.body.note if c.body is not None else None) or ""
    async with c.gw.ledger.connection() as conn:
        try:
            view = await duplicatas.settle(
                c.gw, conn, c.path["duplicata"], now=now, by=f"api key {c.key.id}", note=note, ledger_wait_s=5
            )
        except duplicatas.UnknownDuplicata:
            raise ApiError(ErrorCode.UNKNOWN_DUPLICATA) from None
        except jobs.LedgerBehind as exc:
            raise ApiError(ErrorCode.LEDGER_UNAVAILABLE, f"Settled; giving the balance back waits: {exc}.") from None
        except RuntimeError as exc:  # settled, but the balances could not all be given back yet
            raise ApiError(ErrorCode.SERVICE_UNAVAILABLE, f"Settled; giving the balance back failed: {exc}.") from None
    return Reply(_duplicata_view(view))


PARTICIPANT = "/v1/convenios/{convenio}/participants/{participant}"
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
        PARTICIPANT + "/password/verify",
        "password_verify",
        "Password check; a valid password yields a single-use proof for the empenho.",
        check_password,
        PasswordResult,
        permissions=frozenset({Permission.PASSWORD_CHECK}),
        request=PasswordCheck,
        errors=(
            E.INTEGRATION_KEY_INVALID,
            E.PASSWORD_LOCKED,
            E.PASSWORD_CHECK_BUSY,
            E.PASSWORD_CHECK_TIMEOUT,
            E.PASSWORD_NOT_SET,
            E.UNKNOWN_CONVENIO,
            E.UNKNOWN_PARTICIPANT,
        ),
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
            E.UNKNOWN_CONVENIO,
            E.UNKNOWN_PARTICIPANT,
            E.IDEMPOTENCY_CONFLICT,
        ),
        headers=(
            (
                "Idempotency-Key",
                "Client-chosen key, 1 to 128 visible characters; a retry with the same key "
                "and body replays the first answer.",
            ),
        ),
    ),
    Endpoint(
        "GET",
        "/v1/empenhos/{id}",
        "empenho_get",
        "An empenho with its status history and protocols.",
        get_empenho,
        EmpenhoView,
        permissions=EMPENHO_READ,
        errors=(E.UNKNOWN_EMPENHO, E.LEDGER_UNAVAILABLE),
    ),
    Endpoint(
        "GET",
        "/v1/protocols/{protocol}",
        "decision_get",
        "The decision taken under a protocol: what was asked and what was answered (from the ledger).",
        get_decision,
        DecisionView,
        permissions=DECISION_READ,
        errors=(E.UNKNOWN_PROTOCOL, E.LEDGER_UNAVAILABLE),
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
        errors=(E.UNKNOWN_EMPENHO, E.EMPENHO_NOT_PENDING, E.COMMIT_CONFLICT, E.COMMIT_EXCEEDS_HOLD),
    ),
    Endpoint(
        "POST",
        "/v1/empenhos/{id}/cancel",
        "empenho_cancel",
        "Cancel: a PENDING empenho is released (CANCELLED), a COMMITTED one reversed (REVERSED).",
        cancel_empenho,
        EmpenhoOutcome,
        permissions=frozenset({Permission.EMPENHO_CANCEL}),
        request=CancelRequest,
        body_optional=True,
        errors=(E.UNKNOWN_EMPENHO, E.EMPENHO_NOT_PENDING),
    ),
    # back-office registry
    Endpoint(
        "POST",
        "/v1/convenios",
        "convenio_create",
        "Create a convênio.",
        create_convenio,
        ConvenioView,
        status=201,
        permissions=ADMIN,
        request=ConvenioCreate,
        tag="back-office",
        errors=(E.CONVENIO_EXISTS,),
    ),
    Endpoint(
        "GET",
        "/v1/convenios/{convenio}",
        "convenio_get",
        "A convênio's registry record.",
        get_convenio,
        ConvenioView,
        permissions=READ_REGISTRY,
        tag="back-office",
        errors=(E.UNKNOWN_CONVENIO,),
    ),
    Endpoint(
        "PATCH",
        "/v1/convenios/{convenio}",
        "convenio_update",
        "Update some of a convênio's fields; a total-limit change moves a shared pool's balance.",
        update_convenio,
        ConvenioView,
        permissions=ADMIN,
        request=ConvenioUpdate,
        tag="back-office",
        errors=(E.UNKNOWN_CONVENIO, E.SHARING_MODE_LOCKED, E.LIMIT_ALLOCATION_EXCEEDED),
    ),
    Endpoint(
        "POST",
        "/v1/convenios/{convenio}/participants",
        "participant_create",
        "Add a participant; its balance starts equal to its limit.",
        create_participant,
        ParticipantView,
        status=201,
        permissions=ADMIN,
        request=ParticipantCreate,
        tag="back-office",
        errors=(E.UNKNOWN_CONVENIO, E.PARTICIPANT_EXISTS, E.LIMIT_ALLOCATION_EXCEEDED),
    ),
    Endpoint(
        "GET",
        "/v1/convenios/{convenio}/participants",
        "participant_list",
        "A convênio's participants, by code, a page at a time.",
        list_participants,
        ParticipantList,
        permissions=READ_REGISTRY,
        tag="back-office",
        errors=(E.UNKNOWN_CONVENIO,),
        query=(
            ("after", "Return codes after this one (from next_after)."),
            ("limit", "Page size, 1 to 1000 (default 100)."),
        ),
    ),
    Endpoint(
        "GET",
        "/v1/convenios/{convenio}/movements",
        "movement_list",
        "The convênio's movements (sales, reversals, limit changes), oldest first, a page at a time "
        "(seed 001: CRM > Convênios > Venda a Cliente).",
        list_movements,
        MovementList,
        permissions=MOVEMENTS_READ,
        tag="back-office",
        errors=(E.UNKNOWN_CONVENIO, E.LEDGER_UNAVAILABLE),
        query=(
            ("participant", "Only this participant's movements."),
            ("from", "From this date or RFC 3339 instant (inclusive)."),
            ("to", "Up to this date or RFC 3339 instant (exclusive)."),
            ("after", "Continue after this movement (the previous page's next_after)."),
            ("limit", "Page size, 1 to 1000 (default 100)."),
        ),
    ),
    Endpoint(
        "GET",
        "/v1/convenios/{convenio}/duplicatas",
        "duplicata_list",
        "The convênio's duplicatas (collection bills), newest period first.",
        list_duplicatas,
        DuplicataList,
        permissions=READ_REGISTRY,
        tag="back-office",
        errors=(E.UNKNOWN_CONVENIO, E.LEDGER_UNAVAILABLE),
        query=(
            ("status", "OPEN or PAID."),
            ("limit", "How many, 1 to 1000 (default 100)."),
        ),
    ),
    Endpoint(
        "GET",
        "/v1/duplicatas/{duplicata}",
        "duplicata_get",
        "A duplicata with every sale and reversal it bills.",
        get_duplicata,
        DuplicataView,
        permissions=READ_REGISTRY,
        tag="back-office",
        errors=(E.UNKNOWN_DUPLICATA, E.LEDGER_UNAVAILABLE),
    ),
    Endpoint(
        "POST",
        "/v1/duplicatas/{duplicata}/settle",
        "duplicata_settle",
        "Settle (quitação) a duplicata: ON_SETTLEMENT gives its amount back to the balances, and a "
        "convênio blocked for overdue duplicatas is unblocked once none is left. Settling again "
        "answers the same.",
        settle_duplicata,
        DuplicataView,
        permissions=ADMIN,
        request=SettleRequest,
        body_optional=True,
        tag="back-office",
        errors=(E.UNKNOWN_DUPLICATA, E.LEDGER_UNAVAILABLE),
    ),
    Endpoint(
        "GET",
        PARTICIPANT,
        "participant_get",
        "A participant's registry record.",
        get_participant,
        ParticipantView,
        permissions=READ_REGISTRY,
        tag="back-office",
        errors=(E.UNKNOWN_CONVENIO, E.UNKNOWN_PARTICIPANT),
    ),
    Endpoint(
        "PATCH",
        PARTICIPANT,
        "participant_update",
        "Update a participant; a limit change moves the balance by the same difference.",
        update_participant,
        ParticipantView,
        permissions=ADMIN,
        request=ParticipantUpdate,
        tag="back-office",
        errors=(E.UNKNOWN_CONVENIO, E.UNKNOWN_PARTICIPANT, E.LIMIT_ALLOCATION_EXCEEDED),
    ),
    Endpoint(
        "GET",
        PARTICIPANT + "/vehicles",
        "vehicle_list",
        "The participant's vehicles.",
        list_vehicles,
        VehicleList,
        permissions=READ_REGISTRY,
        tag="back-office",
        errors=(E.UNKNOWN_CONVENIO, E.UNKNOWN_PARTICIPANT),
    ),
    Endpoint(
        "POST",
        PARTICIPANT + "/vehicles",
        "vehicle_save",
        "Register a vehicle (201), or update the description of one registered (200).",
        save_vehicle,
        VehicleView,
        status=201,
        also=(200,),
        permissions=ADMIN,
        request=VehicleSave,
        tag="back-office",
        errors=(E.UNKNOWN_CONVENIO, E.UNKNOWN_PARTICIPANT),
    ),
    Endpoint(
        "DELETE",
        PARTICIPANT + "/vehicles/{plate}",
        "vehicle_delete",
        "Remove a vehicle.",
        delete_vehicle,
        Done,
        permissions=ADMIN,
        tag="back-office",
        errors=(E.UNKNOWN_VEHICLE,),
    ),
    Endpoint(
        "PUT",
        "/v1/integration/key",
        "integration_key_set",
        "Set the integration key the password check must carry (seed 001's palavra chave).",
        put_integration_key,
        Done,
        permissions=frozenset({Permission.INTEGRATION}),
        request=IntegrationKeySet,
        tag="back-office",
    ),
)


# issue 7's endpoints live in their own modules
from gateway import credit_routes, limit_request_routes  # noqa: E402

ENDPOINTS = ENDPOINTS + credit_routes.ENDPOINTS + limit_request_routes.ENDPOINTS
