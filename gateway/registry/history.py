"""The change history of the registry: one row per change of a limit or a status (who, when,
before, after, why), from the registry's events (ledger/writer/history.py), and one per step of a
limit request (gateway/registry/limit_requests.py). A participant's history lists its own rows,
a convênio's its own (total limit and status); newest first, a page at a time."""

from __future__ import annotations

import asyncpg

from gateway.platform.clock import iso
from gateway.platform.services import Services
from gateway.registry import convenios, participants
from gateway.registry.schemas import HistoryChange, HistoryPage

_HISTORY = """
SELECT * FROM registry_history
WHERE convenio = $1 AND coalesce(participant, '') = $2
  AND ($3::bigint IS NULL OR (at, seq) < (SELECT at, seq FROM registry_history WHERE seq = $3))
ORDER BY at DESC, seq DESC
LIMIT $4"""


def _change(r: asyncpg.Record) -> HistoryChange:
    status = r["kind"] == "STATUS"
    return HistoryChange(
        at=iso(r["at"]),
        kind=r["kind"],
        by=r["changed_by"],
        before=r["before_status"] if status else r["before_amount"],
        after=r["after_status"] if status else r["after_amount"],
        reason=r["reason"],
        request=r["request_id"],
        request_status=r["request_status"],
        suggested=r["suggested"],
        urgent=r["urgent"],
    )


async def history(svc: Services, convenio: str, participant: str | None, after: int | None, limit: int) -> HistoryPage:
    """A participant's changes (participant given) or the convênio's own, newest first."""
    if participant is None:
        await convenios.get_convenio(svc, convenio)
    else:
        await participants.get_participant(svc, convenio, participant)
    rows = await svc.ledger.fetch(_HISTORY, convenio, participant or "", after, limit + 1)
    page = HistoryPage(history=[_change(r) for r in rows[:limit]])
    if len(rows) > limit:
        page.next_after = rows[limit - 1]["seq"]
    return page
