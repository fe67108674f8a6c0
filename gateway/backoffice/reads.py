"""The few reads the screens need that no feature serves as a function: a participant's sales and
pending empenhos, and the dashboard's figures, from the ledger's projections. Constant SQL."""

from __future__ import annotations

import datetime
from typing import Any

from gateway.platform.services import Services

_EMPENHOS = """
SELECT id, status, amount, committed_amount, returned, store, terminal, sale, coupon, created_at, committed_at,
       ended_at, expires_at
FROM empenhos WHERE convenio = $1 AND participant = $2
ORDER BY created_at DESC LIMIT $3"""

_TODAY = """
SELECT kind, outcome, coalesce(error, '') AS error, count(*)::int AS n
FROM decisions WHERE at >= $1 AND at < $2
GROUP BY kind, outcome, error ORDER BY n DESC"""

_SALES_TODAY = """
SELECT count(*)::int AS n, coalesce(sum(committed_amount), 0)::bigint AS amount
FROM empenhos WHERE committed_at >= $1 AND committed_at < $2 AND status IN ('COMMITTED', 'REVERSED')"""


async def empenhos(svc: Services, convenio: str, participant: str, limit: int = 50) -> list[dict[str, Any]]:
    return [dict(r) for r in await svc.ledger.fetch(_EMPENHOS, convenio, participant, limit)]


async def today(svc: Services, start: datetime.datetime, end: datetime.datetime) -> dict[str, Any]:
    """Sales and decisions between start and end: totals, and the declines by reason."""
    decisions = [dict(r) for r in await svc.ledger.fetch(_TODAY, start, end)]
    sales = (await svc.ledger.fetch(_SALES_TODAY, start, end))[0]
    declines: dict[str, int] = {}
    for d in decisions:
        if d["outcome"] == "DECLINED":
            declines[d["error"] or d["kind"]] = declines.get(d["error"] or d["kind"], 0) + d["n"]
    return {
        "sales": sales["n"],
        "sales_amount": sales["amount"],
        "approved": sum(d["n"] for d in decisions if d["outcome"] == "APPROVED"),
        "declined": sum(declines.values()),
        "declines": sorted(declines.items(), key=lambda kv: -kv[1]),
    }
