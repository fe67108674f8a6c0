"""The decision log over HTTP: any decision, approved or declined, by its protocol."""

from __future__ import annotations

from gateway.auth.permissions import DECISION_READ
from gateway.decisions import log
from gateway.decisions.schemas import DecisionView
from gateway.platform.errors import ErrorCode
from gateway.platform.http.endpoint import Call, Endpoint, Reply

E = ErrorCode


async def get_decision(c: Call) -> Reply:
    return Reply(await log.decision(c.svc, c.path["protocol"]))


ENDPOINTS: tuple[Endpoint, ...] = (
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
)
