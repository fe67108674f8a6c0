"""The registry's change history ("Histórico"): one registry_history row per change of a limit or
a status, from the participant.* and convenio.* events.

- A participant's `limit` and a convênio's `total_limit` are LIMIT rows, their `status` STATUS
  rows; a creation is a change from nothing (before NULL), so the first row is the grant.
- Before and after come from the event (`previous_limit` / `previous_total_limit`,
  `previous_status`, and `record`, the hash after the change); an event that changes neither
  (a new name, or an approval repeated with the same limit) writes nothing.
- Who and why are the event's `by` and `reason` (the system's overdue blocking says "system").
  A reason that names a limit request ("limit request <id>: <why>", gateway/registry/limit_requests.py)
  links the row to it and keeps only the why.
- The rows' protocol is the event's plus the field, unique: rows are inserted set-based with
  ON CONFLICT DO NOTHING (COPY cannot skip), so a redelivered event writes once.

The steps of the requests themselves (REQUEST rows) are written by gateway/registry/limit_requests.py.
"""

from __future__ import annotations

from typing import Any, ClassVar

import asyncpg

from gateway.registry.limit_requests import REQUEST_IN_REASON
from ledger.writer import events
from ledger.writer.events import Event
from ledger.writer.fold import Projection

_INSERT = """
INSERT INTO registry_history (protocol, convenio, participant, kind, at, changed_by, before_amount, after_amount,
                              before_status, after_status, reason, request_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::bigint[],
                     $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[])
ON CONFLICT (protocol) DO NOTHING"""


def _amount(value: Any) -> int:
    return int(value or 0)


class HistoryFold(Projection):
    """One batch's limit and status changes, in stream order."""

    name: ClassVar[str] = events.HISTORY

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def _participant(self, e: Event, d: dict[str, Any]) -> None:
        self._changed(e, d, "limit", d.get("previous_limit"), d["participant"])

    def _convenio(self, e: Event, d: dict[str, Any]) -> None:
        self._changed(e, d, "total_limit", d.get("previous_total_limit"), None)

    def _changed(self, e: Event, d: dict[str, Any], field: str, previous: Any, participant: str | None) -> None:
        record, created = d["record"], e.type.endswith(".created")
        why = d.get("reason") or ""
        request = None
        named = REQUEST_IN_REASON.match(why)
        if named:
            request, why = named.group(1), named.group(2) or ""
        convenio, at, by = d["convenio"], e.at, d.get("by") or ""
        before, after = None if created else _amount(previous), _amount(record.get(field))
        if before != after:
            key = f"{e.protocol}:{field}"
            self.rows.append((key, convenio, participant, "LIMIT", at, by, before, after, None, None, why, request))
        was, now = None if created else (d.get("previous_status") or None), record.get("status")
        # an update stored before events carried previous_status cannot say whether it changed
        if now and was != now and (created or "previous_status" in d):
            key = f"{e.protocol}:status"
            self.rows.append((key, convenio, participant, "STATUS", at, by, None, None, was, now, why, request))

    async def write(self, conn: asyncpg.Connection) -> None:
        if self.rows:  # one statement for the batch, one array per column
            await conn.execute(_INSERT, *(list(column) for column in zip(*self.rows, strict=True)))

    handlers: ClassVar[dict[str, Any]] = {
        "participant.created": _participant,
        "participant.updated": _participant,
        "convenio.created": _convenio,
        "convenio.updated": _convenio,
    }
