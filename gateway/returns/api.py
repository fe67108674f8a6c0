"""The endpoints of returns (devoluções) of committed sales."""

from __future__ import annotations

from gateway.auth.permissions import Permission
from gateway.platform.errors import ErrorCode
from gateway.platform.http import idempotency
from gateway.platform.http.endpoint import Call, Endpoint, Link, Reply
from gateway.returns import returns
from gateway.returns.schemas import CreditReturnOutcome, CreditReturnRequest, ReturnOutcome, ReturnRequest
from gateway.stores import scope

E = ErrorCode
_EMPENHO = (("id", "$response.body#/empenho"),)


async def return_empenho(c: Call) -> Reply:
    await scope.check(c.svc, c.key, c.body.store, c.body.terminal)  # a return is taken at any store: the key's
    answer = await returns.return_empenho(c.svc, c.key_id, idempotency.idempotency_key(c), c.path["id"], c.body)
    return answer.reply()


async def return_credit_hold(c: Call) -> Reply:
    await scope.check(c.svc, c.key, c.body.store, c.body.terminal)
    answer = await returns.return_credit_hold(c.svc, c.key_id, idempotency.idempotency_key(c), c.path["id"], c.body)
    return answer.reply()


_DECISION = Link("decision", "decision_get", (("protocol", "$response.body#/protocol"),), description="The decision.")
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/v1/empenhos/{id}/returns",
        "empenho_return",
        "Return (devolução) part of a COMMITTED empenho, any time after the commit and in as many parts as it "
        "takes: back to the convênio's balance, or (refund CREDIT) as the customer's DEVOLUCAO credit.",
        return_empenho,
        ReturnOutcome,
        status=201,
        permissions=frozenset({Permission.EMPENHO_CANCEL}),
        request=ReturnRequest,
        errors=(
            E.UNKNOWN_EMPENHO,
            E.EMPENHO_NOT_COMMITTED,
            E.RETURN_EXCEEDS_SALE,
            E.IDEMPOTENCY_CONFLICT,
            E.LEDGER_UNAVAILABLE,
            E.STORE_NOT_ALLOWED,
        ),
        headers=(idempotency.HEADER,),
        links=(
            Link("empenho", "empenho_get", _EMPENHO, description="The empenho with its returns."),
            _DECISION,
        ),
    ),
    Endpoint(
        "POST",
        "/v1/credit-holds/{id}/returns",
        "credit_hold_return",
        "Return (devolução) part of a COMMITTED credit hold, any time after the commit and in as many parts as "
        "it takes: each centavo back to the credit it came from, last-picked first (a credit expired meanwhile "
        "gets its share and stays expired).",
        return_credit_hold,
        CreditReturnOutcome,
        status=201,
        permissions=frozenset({Permission.EMPENHO_CANCEL}),
        request=CreditReturnRequest,
        tag="credits",
        errors=(
            E.UNKNOWN_CREDIT_HOLD,
            E.CREDIT_HOLD_NOT_COMMITTED,
            E.RETURN_EXCEEDS_SALE,
            E.IDEMPOTENCY_CONFLICT,
            E.LEDGER_UNAVAILABLE,
            E.STORE_NOT_ALLOWED,
        ),
        headers=(idempotency.HEADER,),
        links=(
            Link("hold", "credit_hold_get", (("id", "$response.body#/hold"),), description="The hold."),
            _DECISION,
        ),
    ),
)
