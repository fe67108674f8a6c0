"""Finance's export of the customers' current accounts ("as informações de crédito e débito
são enviadas ao setor financeiro"): every debit and credit of a period, one line per
credit touched, with the credit's reference and type, as CSV or JSON.

The period is local days (America/Sao_Paulo), both ends included. The lines are the
`credit_movements` rows (ledger/writer/credits.py): CREDIT (a credit registered), DEBIT (an
order's committed part, negative), RETURN (a part a reversal or a return gave back) and
RETURN_EXPIRED (a part given back to a credit that had expired: it lapses with it). A return's
lines, and a DEVOLUCAO credit a return of an empenho became, carry the return (`return_id`) and
the sale it gives back (`sale`: the credit hold or the empenho). Amounts are integer centavos.
Reads Postgres only.
"""

from __future__ import annotations

import csv
import datetime
import io
from typing import Any, Protocol

from gateway.credits.schemas import CreditMovement, CreditMovementList
from gateway.platform.clock import LOCAL, iso, local_start

PERIOD = """SELECT * FROM credit_movements
            WHERE ($1::timestamptz IS NULL OR at >= $1) AND ($2::timestamptz IS NULL OR at < $2) AND seq > $3
            ORDER BY seq LIMIT $4"""
#: the columns of the CSV, in order (also the keys of each JSON line); new ones go last, so a
#: reader by position keeps working
COLUMNS = (
    "seq",
    "at",
    "local_date",
    "customer",
    "kind",
    "type",
    "reference",
    "amount",
    "remaining_after",
    "credit",
    "hold",
    "order",
    "channel",
    "store",
    "terminal",
    "protocol",
    "return_id",
    "sale",
)
ALL = 10**15  # no page limit


class Fetcher(Protocol):
    """An asyncpg connection, or the gateway's LedgerDB (same `fetch`)."""

    async def fetch(self, sql: str, *args: Any) -> list[Any]: ...


def bounds(start: datetime.date | None, end: datetime.date | None) -> tuple[datetime.datetime | None, ...]:
    """Local days, both included -> [from, to) instants."""
    return (
        local_start(start) if start else None,
        local_start(end + datetime.timedelta(days=1)) if end else None,
    )


def _movement(r: Any) -> CreditMovement:
    m = CreditMovement(
        seq=r["seq"],
        at=iso(r["at"]),
        customer=r["customer"],
        kind=r["kind"],
        type=r["type"],
        reference=r["reference"],
        amount=r["amount"],
        remaining_after=r["remaining_after"],
        credit=r["credit_id"],
        protocol=r["protocol"],
    )
    for column, attr in (
        ("hold_id", "hold"),
        ("order_ref", "order"),
        ("channel", "channel"),
        ("store", "store"),
        ("terminal", "terminal"),
        ("return_id", "return_id"),
        ("sale", "sale"),
    ):
        if r[column] is not None:
            setattr(m, attr, r[column])
    return m


async def page(
    db: Fetcher, start: datetime.date | None, end: datetime.date | None, after: int, limit: int
) -> CreditMovementList:
    """One page of the period's movements, oldest first (GET /v1/credits/movements)."""
    low, high = bounds(start, end)
    rows = await db.fetch(PERIOD, low, high, after, limit + 1)
    result = CreditMovementList(movements=[_movement(r) for r in rows[:limit]])
    if len(rows) > limit:
        result.next_after = result.movements[-1].seq
    return result


def _line(r: Any) -> dict[str, Any]:
    return {
        "seq": r["seq"],
        "at": iso(r["at"]),
        "local_date": r["at"].astimezone(LOCAL).date().isoformat(),
        "customer": r["customer"],
        "kind": r["kind"],
        "type": r["type"],
        "reference": r["reference"],
        "amount": r["amount"],
        "remaining_after": r["remaining_after"],
        "credit": r["credit_id"],
        "hold": r["hold_id"],
        "order": r["order_ref"],
        "channel": r["channel"],
        "store": r["store"],
        "terminal": r["terminal"],
        "protocol": r["protocol"],
        "return_id": r["return_id"],
        "sale": r["sale"],
    }


async def export(db: Fetcher, start: datetime.date, end: datetime.date) -> dict[str, Any]:
    """The whole period: its lines and totals (credits, debits, and both per type)."""
    low, high = bounds(start, end)
    lines = [_line(r) for r in await db.fetch(PERIOD, low, high, 0, ALL)]
    by_type: dict[str, dict[str, int]] = {}
    for line in lines:
        t = by_type.setdefault(line["type"], {"credits": 0, "debits": 0})
        t["credits" if line["amount"] > 0 else "debits"] += line["amount"]
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "movements": lines,
        "totals": {
            "credits": sum(line["amount"] for line in lines if line["amount"] > 0),
            "debits": sum(line["amount"] for line in lines if line["amount"] < 0),
            "count": len(lines),
            "by_type": dict(sorted(by_type.items())),
        },
    }


def as_csv(exported: dict[str, Any]) -> str:
    """The lines as CSV (comma-separated, a header line, empty for a missing value)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for line in exported["movements"]:
        writer.writerow({k: "" if v is None else v for k, v in line.items()})
    return out.getvalue()
