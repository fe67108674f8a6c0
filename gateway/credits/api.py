"""The HTTP endpoints of the customers' current accounts: credits, credit holds and finance's
export (orders and the ERP's order statuses are gateway/orders/). A customer is a participant
code, so a customer's credits live under `/v1/participants/{participant}/credits`, beside the
convênios the same customer takes part in. Handlers stay thin; the rules are in this package's
modules and docs/credits.md.
"""

from __future__ import annotations

from gateway.auth.permissions import CREDIT_READ, FINANCE_READ, Permission
from gateway.credits import credits, export, holds
from gateway.credits.schemas import (
    CreditCreate,
    CreditCreated,
    CreditHeld,
    CreditHoldOutcome,
    CreditHoldRequest,
    CreditHoldView,
    CreditList,
    CreditMovementList,
)
from gateway.holds.schemas import CancelRequest, CommitRequest
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.http import idempotency, params
from gateway.platform.http.endpoint import Call, Endpoint, Link, Reply
from gateway.stores import scope

E = ErrorCode
P = Permission


async def create_credit(c: Call) -> Reply:
    return (await credits.create(c.svc, c.path["participant"], c.body, c.key_id)).reply()


async def list_credits(c: Call) -> Reply:
    return Reply(await credits.listing(c.svc, c.path["participant"]))


async def place_credit_hold(c: Call) -> Reply:
    await scope.check(c.svc, c.key, c.body.store, c.body.terminal)
    return (await holds.hold(c.svc, c.key_id, idempotency.idempotency_key(c), c.body)).reply()


async def get_credit_hold(c: Call) -> Reply:
    view = await holds.get(c.svc, c.path["id"])
    if not scope.owns(c.key, view.store or None, view.terminal or None):
        raise ApiError(ErrorCode.STORE_NOT_ALLOWED)
    return Reply(view)


async def commit_credit_hold(c: Call) -> Reply:
    return (await holds.commit(c.svc, c.path["id"], c.body, scope.limits(c.key))).reply()


async def cancel_credit_hold(c: Call) -> Reply:
    return (await holds.cancel(c.svc, c.path["id"], c.body, scope.limits(c.key))).reply()


async def list_credit_movements(c: Call) -> Reply:
    start, end = params.day(c, "from"), params.day(c, "to")
    after = params.after_seq(c) or 0
    limit = params.page_size(c)
    if start is not None and end is not None and end < start:
        raise params.invalid("to", "`to` must not be before `from`.")
    return Reply(await export.page(c.svc.ledger, start, end, after, limit))


CUSTOMER_CREDITS = "/v1/participants/{participant}/credits"
HOLD = "/v1/credit-holds/{id}"
#: what a credit hold's answer (placed, committed, cancelled) leads to: the hold, its next steps, its order
_ID = (("id", "$response.body#/id"),)
HOLD_LINKS = (
    Link("read", "credit_hold_get", _ID, description="The credit hold with the credits it took."),
    Link("commit", "credit_hold_commit", _ID, body={"coupon": "NF-000123"}, description="The order was invoiced."),
    Link("cancel", "credit_hold_cancel", _ID, description="Release (PENDING) or reverse (COMMITTED) it."),
    Link("order", "order_get", (("order", "$response.body#/order"),), description="Everything the order used."),
)
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        CUSTOMER_CREDITS,
        "credit_create",
        "Register a credit in the customer's current account under its reference; the same reference with "
        "the same values replays the first answer.",
        create_credit,
        CreditCreated,
        status=201,
        permissions=frozenset({P.CREDITS}),
        request=CreditCreate,
        tag="credits",
        errors=(E.CREDIT_REFERENCE_EXISTS,),
        links=(Link("credits", "credit_list", (("participant", "$request.path.participant"),)),),
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
        errors=(E.INSUFFICIENT_CREDIT, E.IDEMPOTENCY_CONFLICT, E.STORE_NOT_ALLOWED),
        headers=(idempotency.HEADER,),
        links=HOLD_LINKS,
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
        errors=(E.UNKNOWN_CREDIT_HOLD, E.LEDGER_UNAVAILABLE, E.STORE_NOT_ALLOWED),
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
            E.STORE_NOT_ALLOWED,
        ),
        links=(HOLD_LINKS[0], HOLD_LINKS[2]),
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
        errors=(
            E.UNKNOWN_CREDIT_HOLD,
            E.CREDIT_HOLD_NOT_PENDING,
            E.FULLY_RETURNED,
            E.LEDGER_UNAVAILABLE,
            E.STORE_NOT_ALLOWED,
        ),
        links=(HOLD_LINKS[0],),
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
            params.day_param("from", "From this local day (YYYY-MM-DD, inclusive)."),
            params.day_param("to", "Up to this local day (YYYY-MM-DD, inclusive; not before `from`)."),
            params.after_seq_param("Continue after this movement (the previous page's next_after)."),
            params.page_size_param(),
        ),
    ),
)
