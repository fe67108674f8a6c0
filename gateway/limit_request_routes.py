"""The HTTP endpoints of limit-change requests and the registry's change history (issue 7).
The rules live in gateway/limit_requests.py; these decode the query and encode the answer."""

from __future__ import annotations

import re

from gateway import limit_requests
from gateway.errors import ErrorCode
from gateway.http import Call, Endpoint, Reply, invalid, page_size, who
from gateway.limit_request_schemas import (
    HistoryPage,
    LimitRequestApprove,
    LimitRequestCreate,
    LimitRequestList,
    LimitRequestReject,
    LimitRequestView,
)
from gateway.permissions import READ_REGISTRY, Permission

E = ErrorCode
ADMIN = frozenset({Permission.ADMIN})
PARTICIPANT = "/v1/convenios/{convenio}/participants/{participant}"
STATUSES = ("PENDING", "APPROVED", "REJECTED")


async def create_request(c: Call) -> Reply:
    view = await limit_requests.create(c.gw, c.path["convenio"], c.path["participant"], c.body, who(c))
    return Reply(view, 201)


async def list_requests(c: Call) -> Reply:
    q = c.request.query_params
    status = q.get("status")
    if status is not None and status not in STATUSES:
        raise invalid("status", "`status` must be PENDING, APPROVED or REJECTED.")
    after = q.get("after")
    if after is not None and not limit_requests.REQUEST_ID.fullmatch(after):
        raise invalid("after", "`after` must be the `next_after` of the previous page.")
    page = await limit_requests.listing(c.gw, c.path["convenio"], c.path["participant"], status, after, page_size(c))
    return Reply(page)


async def get_request(c: Call) -> Reply:
    return Reply(await limit_requests.get(c.gw, c.path["request"]))


async def approve_request(c: Call) -> Reply:
    return Reply(await limit_requests.approve(c.gw, c.path["request"], c.body, who(c)))


async def reject_request(c: Call) -> Reply:
    return Reply(await limit_requests.reject(c.gw, c.path["request"], c.body, who(c)))


def _after_seq(c: Call) -> int | None:
    after = c.request.query_params.get("after")
    if after is not None and not re.fullmatch(r"[0-9]{1,18}", after):
        raise invalid("after", "`after` must be the `next_after` of the previous page.")
    return int(after) if after is not None else None


async def participant_history(c: Call) -> Reply:
    page = await limit_requests.history(c.gw, c.path["convenio"], c.path["participant"], _after_seq(c), page_size(c))
    return Reply(page)


async def convenio_history(c: Call) -> Reply:
    return Reply(await limit_requests.history(c.gw, c.path["convenio"], None, _after_seq(c), page_size(c)))


_PAGE = (
    ("after", "Continue after this one (the previous page's next_after)."),
    ("limit", "Page size, 1 to 1000 (default 100)."),
)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        PARTICIPANT + "/limit-requests",
        "limit_request_create",
        "Ask for a new limit (seed 004: Solicitação de Alteração de Limite): a suggested limit, a reason "
        "and whether it is urgent (Emergencial).",
        create_request,
        LimitRequestView,
        status=201,
        permissions=READ_REGISTRY,
        request=LimitRequestCreate,
        tag="back-office",
        errors=(E.UNKNOWN_CONVENIO, E.UNKNOWN_PARTICIPANT, E.LEDGER_UNAVAILABLE),
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
        query=(("status", "PENDING, APPROVED or REJECTED."), *_PAGE),
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
    ),
    Endpoint(
        "POST",
        "/v1/limit-requests/{request}/reject",
        "limit_request_reject",
        "Reject a pending request, saying why (seed 004: o motivo da Negação).",
        reject_request,
        LimitRequestView,
        permissions=ADMIN,
        request=LimitRequestReject,
        tag="back-office",
        errors=(E.UNKNOWN_LIMIT_REQUEST, E.LIMIT_REQUEST_DECIDED, E.LEDGER_UNAVAILABLE),
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
