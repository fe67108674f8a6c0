"""A convênio's movements, as the ledger keeps them: every change of a balance (a sale, a reversal,
a limit change, a rollover, a restoration), oldest first, a page at a time. The back office's
"Venda a Cliente" screen reads these; Postgres down is LEDGER_UNAVAILABLE."""

from __future__ import annotations

import datetime

import asyncpg

from gateway.platform.clock import iso
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.services import Services
from gateway.registry.schemas import Movement, MovementList

KNOWN = "SELECT 1 FROM convenios WHERE code = $1"
PAGE = """SELECT * FROM movements
          WHERE convenio = $1 AND ($2::text IS NULL OR participant = $2)
            AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4)
            AND seq > $5
          ORDER BY seq LIMIT $6"""
#: the columns shown when set, and their names in the answer
OPTIONAL = (
    ("participant", "participant"),
    ("empenho_id", "empenho"),
    ("terminal", "terminal"),
    ("store", "store"),
    ("sale", "sale"),
    ("coupon", "coupon"),
    ("batch_key", "batch"),
)


async def page(
    svc: Services,
    convenio: str,
    participant: str | None,
    start: datetime.datetime | None,
    end: datetime.datetime | None,
    after: int,
    limit: int,
) -> MovementList:
    if not await svc.ledger.fetch(KNOWN, convenio):
        raise ApiError(ErrorCode.UNKNOWN_CONVENIO)
    rows = await svc.ledger.fetch(PAGE, convenio, participant, start, end, after, limit + 1)
    movements = [_movement(r) for r in rows[:limit]]
    result = MovementList(movements=movements)
    if len(rows) > limit:
        result.next_after = movements[-1].seq
    return result


def _movement(r: asyncpg.Record) -> Movement:
    m = Movement(
        seq=r["seq"],
        protocol=r["protocol"],
        at=iso(r["at"]),
        kind=r["kind"],
        amount=r["amount"],
        balance_after=r["balance_after"],
        pool=r["pool"],
    )
    for column, attr in OPTIONAL:
        if r[column] is not None:
            setattr(m, attr, r[column])
    return m
