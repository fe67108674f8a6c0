"""The HTTP endpoints of customer credits, orders and order-status integration (issue 7).

A customer is a participant code (the pattern of `PATH_PARAMS["participant"]`), so a
customer's credits live under `/v1/participants/{participant}/credits`, beside the convênios
the same customer takes part in. Handlers stay thin; the rules are in gateway/credits.py,
gateway/orders.py and gateway/order_status.py (and docs/credits.md).
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from gateway import credits, order_status, orders
from gateway.credit_schemas import (
    CreditCreate,
    CreditCreated,
    CreditHeld,
    CreditHoldOutcome,
    CreditHoldRequest,
    CreditHoldView,
    CreditList,
    CreditMovementList,
    OrderStatusBatch,
    OrderStatusParams,
    OrderStatusParamsView,
    OrderStatusReport,
    OrderView,
)
from gateway.empenhos import REPLAYED
from gateway.errors import ApiError, ErrorCode
from gateway.http import Call, Endpoint, Reply, invalid, page_size
from gateway.permissions import Permission
from gateway.schemas import CancelRequest, CommitRequest

E = ErrorCode
P = Permission
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")  # as for POST /v1/empenhos
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
#: who may read a customer's credits, a credit hold and an order
CREDIT_READ = frozenset({P.EMPENHO, P.EMPENHO_CANCEL, P.SALES_READ, P.ADMIN, P.CREDITS})
FINANCE_READ = frozenset({P.CREDITS, P.SALES_READ, P.ADMIN})
IDEMPOTENCY_HEADER = (
    "Idempotency-Key",
    "Client-chosen key, 1 to 128 visible characters; a retry with the same key and body replays the first answer.",
)


def _replayed(replayed: bool) -> dict[str, str]:
    return dict(REPLAYED) if replayed else {}


def _api_key_id(c: Call) -> str:
    assert c.key is not None  # every endpoint here needs a key
    return c.key.id


async def create_credit(c: Call) -> Reply:
    d = await credits.create(c.gw, c.path["participant"], c.body, _api_key_id(c))
    return Reply(d.body, d.status, _replayed(d.replayed))


async def list_credits(c: Call) -> Reply:
    return Reply(await credits.listing(c.gw, c.path["participant"]))


async def place_credit_hold(c: Call) -> Reply:
    idem = c.request.headers.get("idempotency-key")
    if idem is None or not _IDEMPOTENCY_KEY.match(idem):
        raise invalid("Idempotency-Key", "The Idempotency-Key header is required: 1 to 128 visible ASCII characters.")
    d = await credits.hold(c.gw, _api_key_id(c), idem, c.body)
    return Reply(d.body, d.status, _replayed(d.replayed))


async def get_credit_hold(c: Call) -> Reply:
    return Reply(await credits.get(c.gw, c.path["id"]))


async def commit_credit_hold(c: Call) -> Reply:
    d = await credits.commit(c.gw, c.path["id"], c.body)
    return Reply(d.body, d.status, _replayed(d.replayed))


async def cancel_credit_hold(c: Call) -> Reply:
    d = await credits.cancel(c.gw, c.path["id"], c.body)
    return Reply(d.body, d.status, _replayed(d.replayed))


async def get_order(c: Call) -> Reply:
    return Reply(await orders.view(c.gw, c.path["order"]))


async def post_order_statuses(c: Call) -> Reply:
    # a cancelling status reverses sales: the key must also hold what a cancel needs (3186)
    assert c.key is not None
    if Permission.EMPENHO_CANCEL not in c.key.permissions:
        p = await order_status.params(c.gw)
        if any(item.status in p.cancel for item in c.body.orders):
            raise ApiError(
                ErrorCode.FORBIDDEN, "Posting a cancelling status (PC) needs permission 3186 as well as 3185."
            )
    return Reply(await order_status.process(c.gw, c.body))


async def get_order_status_params(c: Call) -> Reply:
    return Reply(await order_status.get_params(c.gw))


async def put_order_status_params(c: Call) -> Reply:
    return Reply(await order_status.set_params(c.gw, c.body, by=f"apikey:{_api_key_id(c)}"))


def _date(q: Any, name: str) -> datetime.date | None:
    raw = q.get(name)
    if raw is None:
        return None
    try:
        if not _DATE.fullmatch(raw):
            raise ValueError(raw)
        day = datetime.date.fromisoformat(raw)
        if not 1900 <= day.year <= 2199:
            raise ValueError(raw)
        return day
    except ValueError:
        raise invalid(name, f"`{name}` must be a date (2026-11-01) between the years 1900 and 2199.") from None


async def list_credit_movements(c: Call) -> Reply:
    from ledger import credit_export

    q = c.request.query_params
    start, end = _date(q, "from"), _date(q, "to")
    after = q.get("after", "0")
    if not re.fullmatch(r"[0-9]{1,18}", after):
        raise invalid("after", "`after` must be the `next_after` of the previous page.")
    limit = page_size(c)
    if start is not None and end is not None and end < start:
        raise invalid("to", "`to` must not be before `from`.")
    return Reply(await credit_export.page(c.gw.ledger, start, end, int(after), limit))


CUSTOMER_CREDITS = "/v1/participants/{participant}/credits"
HOLD = "/v1/credit-holds/{id}"
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        CUSTOMER_CREDITS,
        "credit_create",
        "Register a credit in the customer's current account (seed 000) under its reference; the same "
        "reference with the same values replays the first answer.",
        create_credit,
        CreditCreated,
        status=201,
        permissions=frozenset({P.CREDITS}),
        request=CreditCreate,
        tag="credits",
        errors=(E.CREDIT_REFERENCE_EXISTS,),
    ),
    Endpoint(
        "GET",
        CUSTOMER_CREDITS,
        "credit_list",
        "The customer's credits, in the order they were registered, with what each has remaining.",
        list_credits,
        CreditList,
        permissions=CREDIT_READ,
        tag="credits",
    ),
    Endpoint(
        "POST",
        "/v1/credit-holds",
        "credit_hold",
        "An order pays with the customer's credits: hold the amount over as many credits as it needs "
        "(those expiring first, then the oldest).",
        place_credit_hold,
        CreditHeld,
        status=201,
        permissions=frozenset({P.EMPENHO}),
        request=CreditHoldRequest,
        tag="credits",
        errors=(E.INSUFFICIENT_CREDIT, E.IDEMPOTENCY_CONFLICT),
        headers=(IDEMPOTENCY_HEADER,),
    ),
    Endpoint(
        "GET",
        HOLD,
        "credit_hold_get",
        "A credit hold with the credits it took and its status history.",
        get_credit_hold,
        CreditHoldView,
        permissions=CREDIT_READ,
        tag="credits",
        errors=(E.UNKNOWN_CREDIT_HOLD, E.LEDGER_UNAVAILABLE),
    ),
    Endpoint(
        "POST",
        HOLD + "/commit",
        "credit_hold_commit",
        "Commit (post) the credit hold: all or part of it is debited from the credits; the rest goes back "
        "to them, last-picked first.",
        commit_credit_hold,
        CreditHoldOutcome,
        permissions=frozenset({P.EMPENHO}),
        request=CommitRequest,
        tag="credits",
        errors=(
            E.UNKNOWN_CREDIT_HOLD,
            E.CREDIT_HOLD_NOT_PENDING,
            E.CREDIT_COMMIT_CONFLICT,
            E.CREDIT_COMMIT_EXCEEDS_HOLD,
        ),
    ),
    Endpoint(
        "POST",
        HOLD + "/cancel",
        "credit_hold_cancel",
        "Cancel: a PENDING credit hold is released (CANCELLED), a COMMITTED one reversed (REVERSED, the order "
        "was returned); each part goes back to the credit it came from.",
        cancel_credit_hold,
        CreditHoldOutcome,
        permissions=frozenset({P.EMPENHO_CANCEL}),
        request=CancelRequest,
        body_optional=True,
        tag="credits",
        errors=(E.UNKNOWN_CREDIT_HOLD, E.CREDIT_HOLD_NOT_PENDING),
    ),
    Endpoint(
        "GET",
        "/v1/orders/{order}",
        "order_get",
        "An order: every credit it used (reference, type, amount) and its convênio empenhos. An empenho of "
        "the last moments shows once the ledger has stored it.",
        get_order,
        OrderView,
        permissions=CREDIT_READ,
        tag="credits",
        errors=(E.UNKNOWN_ORDER, E.LEDGER_UNAVAILABLE),
    ),
    Endpoint(
        "POST",
        "/v1/orders/status",
        "order_status_post",
        "The ERP's order status changes, 1 to 500: a commit status commits the orders' pending holds, a "
        "cancel status cancels them (seed 003); each order's result is reported, and posting again answers "
        "the same.",
        post_order_statuses,
        OrderStatusReport,
        permissions=frozenset({P.EMPENHO}),
        request=OrderStatusBatch,
        tag="credits",
        errors=(E.LEDGER_UNAVAILABLE,),
    ),
    Endpoint(
        "GET",
        "/v1/integration/order-status",
        "order_status_params_get",
        "The order-status integration's parameters (seed 003; defaults PF, PC, no balance update).",
        get_order_status_params,
        OrderStatusParamsView,
        permissions=frozenset({P.INTEGRATION}),
        tag="back-office",
    ),
    Endpoint(
        "PUT",
        "/v1/integration/order-status",
        "order_status_params_set",
        "Set which order statuses commit and which cancel an order's holds, and whether processing changes "
        "the convênio balance (seed 003's processamovimento, inativamovimento, alterasaldo).",
        put_order_status_params,
        OrderStatusParamsView,
        permissions=frozenset({P.INTEGRATION}),
        request=OrderStatusParams,
        tag="back-office",
    ),
    Endpoint(
        "GET",
        "/v1/credits/movements",
        "credit_movements",
        "For finance: every debit and credit of the customers' current accounts, with reference and type, "
        "oldest first, a page at a time (the CLI `convenio credits export` gives CSV too).",
        list_credit_movements,
        CreditMovementList,
        permissions=FINANCE_READ,
        tag="credits",
        errors=(E.LEDGER_UNAVAILABLE,),
        query=(
            ("from", "From this local day (YYYY-MM-DD, inclusive)."),
            ("to", "Up to this local day (YYYY-MM-DD, inclusive)."),
            ("after", "Continue after this movement (the previous page's next_after)."),
            ("limit", "Page size, 1 to 1000 (default 100)."),
        ),
    ),
)
