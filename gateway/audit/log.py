"""Writing the audit log: one row per back-office action.

Actions that go through a Lua script are audited by the ledger writer from their event
(ledger/writer/audit.py), under the event's protocol, so a redelivered event writes once. Actions
that touch Postgres only (a privacy export or erasure) call `record` inside their own transaction.
`before` and `after` must hold nothing secret: no password or its hash, no key, no document in clear.
"""

from __future__ import annotations

import datetime
from typing import Any

import asyncpg
import msgspec

from gateway.audit.redact import redact
from gateway.platform.ids import new_protocol

_INSERT = """
INSERT INTO audit_log (protocol, at, actor, action, target, before, after)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)
ON CONFLICT (protocol) DO NOTHING"""


def _json(value: dict[str, Any] | None) -> str | None:
    # redacted here too: a caller's slip must not put a secret in the log
    return None if value is None else msgspec.json.encode(redact(value)).decode()


async def record(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    actor: str,
    action: str,
    target: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    at: datetime.datetime | None = None,
    protocol: str | None = None,
) -> str:
    """Append one row; returns its protocol."""
    protocol = protocol or new_protocol()
    at = at or datetime.datetime.now(datetime.UTC)
    await conn.execute(_INSERT, protocol, at, actor, action, target, _json(before), _json(after))
    return protocol
