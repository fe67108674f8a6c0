"""A decision by its protocol: what was asked and what was answered (ledger/writer/decisions.py
keeps the log). A decision reaches the ledger within moments of being taken."""

from __future__ import annotations

import json

from gateway.decisions.schemas import DecisionView
from gateway.platform.clock import iso
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.services import Services

BY_PROTOCOL = "SELECT * FROM decisions WHERE protocol = $1"
#: the columns shown when set, and their names in the answer
OPTIONAL = (
    ("http_status", "http_status"),
    ("error", "error"),
    ("convenio", "convenio"),
    ("participant", "participant"),
    ("empenho_id", "empenho"),
)


async def decision(svc: Services, protocol: str) -> DecisionView:
    rows = await svc.ledger.fetch(BY_PROTOCOL, protocol)
    if not rows:
        raise ApiError(ErrorCode.UNKNOWN_PROTOCOL)
    r = rows[0]
    view = DecisionView(
        protocol=r["protocol"],
        at=iso(r["at"]),
        kind=r["kind"],
        outcome=r["outcome"],
        request=json.loads(r["request"]),
        answer=json.loads(r["answer"]),
    )
    for column, attr in OPTIONAL:
        if r[column] is not None:
            setattr(view, attr, r[column])
    return view
