"""The back office's registry endpoints: convênios, participants and their vehicles, a convênio's
movements, limit-change requests and the change history of limits and statuses. Reading needs
permission 603 or 1748 (or the admin's 9000); writing the admin's."""

from __future__ import annotations

import re

from gateway.auth.permissions import ADMIN, MOVEMENTS_READ, READ_REGISTRY
from gateway.platform.errors import ErrorCode
from gateway.platform.http import params
from gateway.platform.http.endpoint import Call, Endpoint, Link, Param, Reply, who
from gateway.platform.http.schemas import Done
from gateway.platform.ids import LIMIT_REQUEST_ID
from gateway.registry import convenios, history, limit_requests, movements, participants, vehicles
from gateway.registry.schemas import (
    ConvenioCreate,
    ConvenioPage,
    ConvenioUpdate,
    ConvenioView,
    HistoryPage,
    LimitRequestApprove,
    LimitRequestCreate,
    LimitRequestList,
    LimitRequestReject,
    LimitRequestView,
    MovementList,
    ParticipantCreate,
    ParticipantList,
    ParticipantMatches,
    ParticipantPage,
    ParticipantSearch,
    ParticipantUpdate,
    ParticipantView,
    VehicleList,
    VehicleSave,
    VehicleView,
)

E = ErrorCode
PARTICIPANT = "/v1/convenios/{convenio}/participants/{participant}"
REQUEST_STATUSES = ("PENDING", "APPROVED", "REJECTED")
#: a page of a listing by code continues after a code; of participants, after "PARTICIPANT/CONVENIO"
_CODE = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}"
CONVENIO_CURSOR = re.compile(rf"^{_CODE}$")
PARTICIPANT_CURSOR = re.compile(rf"^({_CODE})/({_CODE})$")
_Q = "Only those whose code or name contains this text, case and accents aside."


# --- convênios, participants, vehicles ---------------------------------------------------------
async def create_convenio(c: Call) -> Reply:
    return Reply(await convenios.save_convenio(c.svc, c.body.code, c.body, by=who(c)), 201)


async def update_convenio(c: Call) -> Reply:
    return Reply(await convenios.save_convenio(c.svc, c.path["convenio"], c.body, by=who(c)))


async def get_convenio(c: Call) -> Reply:
    return Reply(await convenios.get_convenio(c.svc, c.path["convenio"]))


async def list_convenios(c: Call) -> Reply:
    page = await convenios.list_convenios(
        c.svc,
        q=params.text(c, "q"),
        status=params.choice(c, "status", convenios.STATUSES),
        order=params.choice(c, "order", convenios.ORDERS) or "code",
        after=params.after_match(c, CONVENIO_CURSOR),
        limit=params.page_size(c),
    )
    return Reply(page)


async def find_participants(c: Call) -> Reply:
    after = params.after_match(c, PARTICIPANT_CURSOR)
    page = await participants.find_participants(
        c.svc,
        q=params.text(c, "q"),
        convenio=params.code(c, "convenio"),
        status=params.choice(c, "status", convenios.STATUSES),
        after=tuple(after.split("/", 1)) if after else None,  # type: ignore[arg-type]
        limit=params.page_size(c),
    )
    return Reply(page)


async def create_participant(c: Call) -> Reply:
    view = await participants.save_participant(c.svc, c.path["convenio"], c.body.code, c.body, by=who(c))
    return Reply(view, 201)


async def update_participant(c: Call) -> Reply:
    view = await participants.save_participant(c.svc, c.path["convenio"], c.path["participant"], c.body, by=who(c))
    return Reply(view)


async def get_participant(c: Call) -> Reply:
    return Reply(await participants.get_participant(c.svc, c.path["convenio"], c.path["participant"]))


async def list_participants(c: Call) -> Reply:
    after = c.request.query_params.get("after", "")
    return Reply(await participants.list_participants(c.svc, c.path["convenio"], after, params.page_size(c)))


async def search_participants(c: Call) -> Reply:
    return Reply(await participants.search(c.svc, c.body.document))


async def save_vehicle(c: Call) -> Reply:
    created, view = await vehicles.save_vehicle(c.svc, c.path["convenio"], c.path["participant"], c.body, by=who(c))
    return Reply(view, 201 if created else 200)


async def delete_vehicle(c: Call) -> Reply:
    await vehicles.delete_vehicle(c.svc, c.path["convenio"], c.path["participant"], c.path["plate"], by=who(c))
    return Reply(Done())


async def list_vehicles(c: Call) -> Reply:
    return Reply(await vehicles.list_vehicles(c.svc, c.path["convenio"], c.path["participant"]))


async def list_movements(c: Call) -> Reply:
    participant = params.code(c, "participant")
    after = params.after_seq(c) or 0
    start, end = params.instant(c, "from"), params.instant(c, "to")
    page = await movements.page(c.svc, c.path["convenio"], participant, start, end, after, params.page_size(c))
    return Reply(page)


# --- limit-change requests and the change history ---------------------------------------------
async def create_request(c: Call) -> Reply:
    view = await limit_requests.create(c.svc, c.path["convenio"], c.path["participant"], c.body, who(c))
    return Reply(view, 201)


async def list_requests(c: Call) -> Reply:
    status = params.choice(c, "status", REQUEST_STATUSES)
    after = params.after_match(c, LIMIT_REQUEST_ID)
    page = await limit_requests.listing(
        c.svc, c.path["convenio"], c.path["participant"], status, after, params.page_size(c)
    )
    return Reply(page)


async def worklist(c: Call) -> Reply:
    status = params.choice(c, "status", REQUEST_STATUSES) or "PENDING"
    after = params.after_match(c, LIMIT_REQUEST_ID)
    return Reply(await limit_requests.worklist(c.svc, status, after, params.page_size(c)))


async def get_request(c: Call) -> Reply:
    return Reply(await limit_requests.get(c.svc, c.path["request"]))


async def approve_request(c: Call) -> Reply:
    return Reply(await limit_requests.approve(c.svc, c.path["request"], c.body, who(c)))


async def reject_request(c: Call) -> Reply:
    return Reply(await limit_requests.reject(c.svc, c.path["request"], c.body, who(c)))


async def participant_history(c: Call) -> Reply:
    page = await history.history(
        c.svc, c.path["convenio"], c.path["participant"], params.after_seq(c), params.page_size(c)
    )
    return Reply(page)


async def convenio_history(c: Call) -> Reply:
    return Reply(await history.history(c.svc, c.path["convenio"], None, params.after_seq(c), params.page_size(c)))


_PAGE = (params.after_seq_param(), params.page_size_param())

# --- what one answer leads to (OpenAPI links) ---------------------------------------------------
_CONVENIO = (("convenio", "$response.body#/code"),)
_PARTICIPANT = (("convenio", "$response.body#/convenio"), ("participant", "$response.body#/code"))
CONVENIO_LINKS = (
    Link("read", "convenio_get", _CONVENIO),
    Link("update", "convenio_update", _CONVENIO),
    Link("add_participant", "participant_create", _CONVENIO),
    Link("participants", "participant_list", _CONVENIO),
    Link("movements", "movement_list", _CONVENIO),
    Link("history", "convenio_history", _CONVENIO),
    Link("duplicatas", "duplicata_list", _CONVENIO),
)
PARTICIPANT_LINKS = (
    Link("read", "participant_get", _PARTICIPANT),
    Link("update", "participant_update", _PARTICIPANT),
    Link("limit", "limit", _PARTICIPANT, description="What the participant may still spend."),
    Link("check_password", "password_verify", _PARTICIPANT, description="The participant's password check."),
    Link("vehicles", "vehicle_list", _PARTICIPANT),
    Link("add_vehicle", "vehicle_save", _PARTICIPANT),
    Link("ask_limit", "limit_request_create", _PARTICIPANT),
    Link("limit_requests", "limit_request_list", _PARTICIPANT),
    Link("history", "participant_history", _PARTICIPANT),
    Link("convenios", "convenios_of", (("participant", "$response.body#/code"),)),
)
_VEHICLE = (
    ("convenio", "$request.path.convenio"),
    ("participant", "$request.path.participant"),
    ("plate", "$response.body#/plate"),
)
_REQUEST = (("request", "$response.body#/id"),)
LIMIT_REQUEST_LINKS = (
    Link("read", "limit_request_get", _REQUEST),
    Link("approve", "limit_request_approve", _REQUEST),
    Link("reject", "limit_request_reject", _REQUEST, body={"reason": "renda insuficiente"}),
    Link(
        "history",
        "participant_history",
        (("convenio", "$response.body#/convenio"), ("participant", "$response.body#/participant")),
    ),
)

ENDPOINTS: tuple[Endpoint, ...] = (
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
        errors=(E.CONVENIO_EXISTS, E.STORE_NOT_REGISTERED),
        links=CONVENIO_LINKS,
    ),
    Endpoint(
        "GET",
        "/v1/convenios",
        "convenio_list",
        "List and search the convênios (CRM > Cadastros > Convênios): by code or newest first, a page at a "
        "time, each as GET /v1/convenios/{convenio} shows it. Filters read the ledger (a convênio created "
        "moments ago appears once the ledger has it); balances are Redis's, live.",
        list_convenios,
        ConvenioPage,
        permissions=READ_REGISTRY,
        tag="back-office",
        errors=(E.LEDGER_UNAVAILABLE,),
        query=(
            params.text_param("q", _Q),
            params.choice_param("status", convenios.STATUSES, "Only the convênios in this status."),
            params.choice_param("order", convenios.ORDERS, "By code (the default), or newest first."),
            params.after_match_param(CONVENIO_CURSOR, "Continue after this convênio (the previous page's next_after)."),
            params.page_size_param(),
        ),
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
        errors=(E.UNKNOWN_CONVENIO, E.SHARING_MODE_LOCKED, E.LIMIT_ALLOCATION_EXCEEDED, E.STORE_NOT_REGISTERED),
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
        links=PARTICIPANT_LINKS,
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
            Param("after", "Return codes after this one (from next_after).", {"type": "string"}),
            params.page_size_param(),
        ),
    ),
    Endpoint(
        "GET",
        "/v1/participants",
        "participant_find",
        "Search the participants of every convênio (or of one) by code or name, by participant code then "
        "convênio, a page at a time. A CPF or CNPJ is searched with POST /v1/participants/search, never in "
        "a URL. Filters read the ledger; each record shown is Redis's, live.",
        find_participants,
        ParticipantPage,
        permissions=READ_REGISTRY,
        tag="back-office",
        errors=(E.UNKNOWN_CONVENIO, E.LEDGER_UNAVAILABLE),
        query=(
            params.text_param("q", _Q),
            params.code_param("convenio", "Only this convênio's participants."),
            params.choice_param("status", convenios.STATUSES, "Only the participants in this status."),
            params.after_match_param(
                PARTICIPANT_CURSOR, 'Continue after this "PARTICIPANT/CONVENIO" (the previous page\'s next_after).'
            ),
            params.page_size_param(),
        ),
    ),
    Endpoint(
        "POST",
        "/v1/participants/search",
        "participant_search",
        "Find a customer by CPF or CNPJ, in every convênio they take part in. A POST, so that the document "
        "travels in the body and no proxy or access log in front of the gateway records it in a URL. "
        "Reads the ledger: a participant added moments ago is found once the ledger has it.",
        search_participants,
        ParticipantMatches,
        permissions=READ_REGISTRY,
        request=ParticipantSearch,
        tag="back-office",
        errors=(E.LEDGER_UNAVAILABLE,),
    ),
    Endpoint(
        "GET",
        "/v1/convenios/{convenio}/movements",
        "movement_list",
        "The convênio's movements (sales, reversals, limit changes), oldest first, a page at a time: what "
        "the back office's sales to customers screen (Venda a Cliente) lists.",
        list_movements,
        MovementList,
        permissions=MOVEMENTS_READ,
        tag="back-office",
        errors=(E.UNKNOWN_CONVENIO, E.LEDGER_UNAVAILABLE),
        query=(
            params.code_param("participant", "Only this participant's movements."),
            params.instant_param("from", "From this date (midnight UTC) or RFC 3339 instant, inclusive."),
            params.instant_param("to", "Up to this date (midnight UTC) or RFC 3339 instant, exclusive."),
            params.after_seq_param("Continue after this movement (the previous page's next_after)."),
            params.page_size_param(),
        ),
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
        links=(Link("delete", "vehicle_delete", _VEHICLE),),
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
        "POST",
        PARTICIPANT + "/limit-requests",
        "limit_request_create",
        "Ask for a new limit (a Solicitação de Alteração de Limite): a suggested limit, a reason and whether "
        "it is urgent (Emergencial).",
        create_request,
        LimitRequestView,
        status=201,
        permissions=READ_REGISTRY,
        request=LimitRequestCreate,
        tag="back-office",
        errors=(E.UNKNOWN_CONVENIO, E.UNKNOWN_PARTICIPANT, E.LEDGER_UNAVAILABLE),
        links=LIMIT_REQUEST_LINKS,
    ),
    Endpoint(
        "GET",
        PARTICIPANT + "/limit-requests",
        "limit_request_list",
        "The participant's limit requests: pending ones first, urgent first among them, then newest first.",
        list_requests,
        LimitRequestList,
        permissions=READ_REGISTRY,
        tag="back-office",
        errors=(E.UNKNOWN_CONVENIO, E.UNKNOWN_PARTICIPANT, E.LEDGER_UNAVAILABLE),
        query=(
            params.choice_param("status", REQUEST_STATUSES, "Only the requests in this status."),
            params.after_match_param(LIMIT_REQUEST_ID, "Continue after this request (the previous page's next_after)."),
            params.page_size_param(),
        ),
    ),
    Endpoint(
        "GET",
        "/v1/limit-requests",
        "limit_request_worklist",
        "Every participant's limit requests in one worklist, pending ones by default: urgent (Emergencial) "
        "first, then oldest first, a page at a time.",
        worklist,
        LimitRequestList,
        permissions=READ_REGISTRY,
        tag="back-office",
        errors=(E.LEDGER_UNAVAILABLE,),
        query=(
            params.choice_param("status", REQUEST_STATUSES, "The requests in this status (default PENDING)."),
            params.after_match_param(LIMIT_REQUEST_ID, "Continue after this request (the previous page's next_after)."),
            params.page_size_param(),
        ),
    ),
    Endpoint(
        "GET",
        "/v1/limit-requests/{request}",
        "limit_request_get",
        "A limit request, and its decision once decided.",
        get_request,
        LimitRequestView,
        permissions=READ_REGISTRY,
        tag="back-office",
        errors=(E.UNKNOWN_LIMIT_REQUEST, E.LEDGER_UNAVAILABLE),
    ),
    Endpoint(
        "POST",
        "/v1/limit-requests/{request}/approve",
        "limit_request_approve",
        "Approve a pending request, for the suggested limit or another one: the participant's limit is set "
        "to it (the balance moves by the difference). Approving again after an interrupted approval "
        "finishes it.",
        approve_request,
        LimitRequestView,
        permissions=ADMIN,
        request=LimitRequestApprove,
        body_optional=True,
        tag="back-office",
        errors=(
            E.UNKNOWN_LIMIT_REQUEST,
            E.LIMIT_REQUEST_DECIDED,
            E.LIMIT_ALLOCATION_EXCEEDED,
            E.UNKNOWN_CONVENIO,
            E.UNKNOWN_PARTICIPANT,
            E.LEDGER_UNAVAILABLE,
        ),
        links=(LIMIT_REQUEST_LINKS[0], LIMIT_REQUEST_LINKS[3]),
    ),
    Endpoint(
        "POST",
        "/v1/limit-requests/{request}/reject",
        "limit_request_reject",
        "Reject a pending request, saying why (o motivo da Negação).",
        reject_request,
        LimitRequestView,
        permissions=ADMIN,
        request=LimitRequestReject,
        tag="back-office",
        errors=(E.UNKNOWN_LIMIT_REQUEST, E.LIMIT_REQUEST_DECIDED, E.LEDGER_UNAVAILABLE),
        links=(LIMIT_REQUEST_LINKS[0], LIMIT_REQUEST_LINKS[3]),
    ),
    Endpoint(
        "GET",
        PARTICIPANT + "/history",
        "participant_history",
        "The participant's changes of limit and status (who, when, before, after, why) and the steps of "
        "its limit requests, newest first.",
        participant_history,
        HistoryPage,
        permissions=READ_REGISTRY,
        tag="back-office",
        errors=(E.UNKNOWN_CONVENIO, E.UNKNOWN_PARTICIPANT, E.LEDGER_UNAVAILABLE),
        query=_PAGE,
    ),
    Endpoint(
        "GET",
        "/v1/convenios/{convenio}/history",
        "convenio_history",
        "The convênio's own changes of total limit and status (who, when, before, after, why), newest first.",
        convenio_history,
        HistoryPage,
        permissions=READ_REGISTRY,
        tag="back-office",
        errors=(E.UNKNOWN_CONVENIO, E.LEDGER_UNAVAILABLE),
        query=_PAGE,
    ),
)
