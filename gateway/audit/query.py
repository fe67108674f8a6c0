"""Reading the audit log: filtered by time, actor, action and target, newest first, a page at a
time (the cursor is a row's seq, as in the registry's history)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import asyncpg
import msgspec

from gateway.audit.schemas import AuditEntry, AuditPage
from gateway.platform.clock import iso
from gateway.platform.postgres import LedgerDB

_PAGE = """
SELECT seq, protocol, at, actor, action, target, before::text AS before, after::text AS after FROM audit_log
WHERE ($1::timestamptz IS NULL OR at >= $1) AND ($2::timestamptz IS NULL OR at < $2)
  AND ($3::text IS NULL OR actor = $3)
  AND ($4::text IS NULL OR starts_with(action, $4))
  AND ($5::text IS NULL OR starts_with(target, $5))
  AND ($6::bigint IS NULL OR (at, seq) < (SELECT at, seq FROM audit_log WHERE seq = $6))
ORDER BY at DESC, seq DESC
LIMIT $7"""
_decode = msgspec.json.Decoder().decode


@dataclass(frozen=True)
class Filter:
    """Which rows: at in [start, end), this actor, an action and a target starting so."""

    start: datetime.datetime | None = None
    end: datetime.datetime | None = None
    actor: str | None = None
    action: str | None = None
    target: str | None = None


def _json(text: str | None) -> dict | None:
    return None if text is None else _decode(text)


def _entry(r: asyncpg.Record) -> AuditEntry:
    return AuditEntry(
        seq=r["seq"],
        protocol=r["protocol"],
        at=iso(r["at"]),
        actor=r["actor"],
        action=r["action"],
        target=r["target"],
        before=_json(r["before"]),
        after=_json(r["after"]),
    )


async def page(db: LedgerDB | asyncpg.Connection, f: Filter, after: int | None, limit: int) -> AuditPage:
    """The rows that match, newest first; next_after when there are more."""
    rows = await db.fetch(_PAGE, f.start, f.end, f.actor, f.action, f.target, after, limit + 1)
    result = AuditPage(entries=[_entry(r) for r in rows[:limit]])
    if len(rows) > limit:
        result.next_after = rows[limit - 1]["seq"]
    return result
