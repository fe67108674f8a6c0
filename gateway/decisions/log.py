"""The decision log (ledger/writer/decisions.py keeps it): a decision by its protocol, what was
asked and what was answered, and the log filtered, newest first, a page at a time. A decision
reaches the ledger within moments of being taken."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass

import asyncpg

from gateway.decisions.schemas import DecisionPage, DecisionView
from gateway.platform.clock import iso
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.services import Services

BY_PROTOCOL = "SELECT * FROM decisions WHERE protocol = $1"
# newest first; a page continues after the previous page's last protocol in that order. The store
# and terminal are those the request named (a scoped key's own: gateway/stores/scope.py)
_PAGE = """
SELECT * FROM decisions
WHERE ($1::timestamptz IS NULL OR at >= $1) AND ($2::timestamptz IS NULL OR at < $2)
  AND ($3::text IS NULL OR request->>'store' = $3)
  AND ($4::text IS NULL OR request->>'terminal' = $4)
  AND ($5::text IS NULL OR kind = $5)
  AND ($6::text IS NULL OR outcome = $6)
  AND ($7::text IS NULL OR convenio = $7)
  AND ($8::text IS NULL OR participant = $8)
  AND ($9::text IS NULL OR (at, protocol) < (SELECT at, protocol FROM decisions WHERE protocol = $9))
ORDER BY at DESC, protocol DESC
LIMIT $10"""
OUTCOMES = ("APPROVED", "DECLINED")
#: the columns shown when set, and their names in the answer
OPTIONAL = (
    ("http_status", "http_status"),
    ("error", "error"),
    ("convenio", "convenio"),
    ("participant", "participant"),
    ("empenho_id", "empenho"),
)


@dataclass(frozen=True)
class Filter:
    """Which decisions: at in [start, end), at this store and terminal, of this kind (such as
    "empenho.hold") and outcome, on this convênio and participant; None: any."""

    start: datetime.datetime | None = None
    end: datetime.datetime | None = None
    store: str | None = None
    terminal: str | None = None
    kind: str | None = None
    outcome: str | None = None
    convenio: str | None = None
    participant: str | None = None


async def decision(svc: Services, protocol: str) -> DecisionView:
    rows = await svc.ledger.fetch(BY_PROTOCOL, protocol)
    if not rows:
        raise ApiError(ErrorCode.UNKNOWN_PROTOCOL)
    return _view(rows[0])


async def page(svc: Services, f: Filter, after: str | None = None, limit: int = 100) -> DecisionPage:
    """The decisions that match, newest first, each with its request and answer (which never
    hold a password, a proof or a key); next_after when there are more."""
    rows = await svc.ledger.fetch(
        _PAGE, f.start, f.end, f.store, f.terminal, f.kind, f.outcome, f.convenio, f.participant, after, limit + 1
    )
    result = DecisionPage(decisions=[_view(r) for r in rows[:limit]])
    if len(rows) > limit:
        result.next_after = result.decisions[-1].protocol
    return result


def _view(r: asyncpg.Record) -> DecisionView:
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
