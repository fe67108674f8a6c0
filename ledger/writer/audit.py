"""The audit log of the back office: one audit_log row per back-office event (who, when, what,
before, after), read by gateway/audit/query.py.

- The row's protocol is the event's: rows are inserted set-based with ON CONFLICT DO NOTHING, so a
  redelivered event writes once.
- The actor is the event's `by`: "apikey:<id>" for an HTTP caller, "cli:<login>" for the CLI,
  "system" for the jobs (and for an event that names nobody). A credit names its API key.
- `before` is what the event carries of the state before (its previous_* fields), `after` the
  record after the change; both without secrets (gateway/audit/redact.py), and a record's counters
  (Redis keeps them as text) as numbers.
- The month's balance batches are not here: they are the jobs' own work, recorded with who ran
  them in their batch tables. Actions on Postgres only are audited by gateway/audit/log.py.

Nothing reads these rows back into Redis: `convenio rebuild` and `verify` ignore them.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import asyncpg

from gateway.audit.redact import redact
from ledger.writer import events
from ledger.writer.events import Event
from ledger.writer.fold import Projection, json_text

_INSERT = """
INSERT INTO audit_log (protocol, at, actor, action, target, before, after)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[])
ON CONFLICT (protocol) DO NOTHING"""

#: a record's fields that are numbers (Redis hashes hold text): shown as numbers
_NUMBERS = frozenset(
    {
        "total_limit",
        "tolerance",
        "limit",
        "balance",
        "reserved",
        "allocated",
        "w_order",
        "w_day",
        "w_month",
        "rollover_day",
        "billing_due_days",
        "billing_block_after_days",
        "created_at",
        "updated_at",
        "pw_changed_at",
        "registered_at",
        "last_km",
        "last_km_at",
        "amount",
        "remaining",
        "expires_at",
    }
)
_WHOLE = re.compile(r"-?[0-9]{1,18}")
_PREVIOUS = "previous_"


def _shown(record: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in redact(record).items():
        if name in _NUMBERS and isinstance(value, str) and _WHOLE.fullmatch(value):
            value = int(value)
        out[name] = value
    return out


def _previous(d: dict[str, Any]) -> dict[str, Any]:
    """What a registry event carries of the state before it (previous_limit -> limit, ...)."""
    return _shown({k.removeprefix(_PREVIOUS): v for k, v in d.items() if k.startswith(_PREVIOUS)})


def _actor(by: Any) -> str:
    return str(by) if by else "system"


class AuditFold(Projection):
    """One batch's back-office actions, in stream order."""

    name: ClassVar[str] = events.AUDIT

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def _row(
        self, e: Event, target: str, before: dict[str, Any] | None, after: dict[str, Any] | None, actor: str = ""
    ) -> None:
        actor = actor or _actor(e.data.get("by"))
        shown = (None if v is None else json_text(v) for v in (before, after))
        self.rows.append((e.protocol, e.at, actor, e.type, target, *shown))

    # -- the registry ------------------------------------------------------------------------------
    def _convenio(self, e: Event, d: dict[str, Any]) -> None:
        created = e.type.endswith(".created")
        self._row(e, f"convenio {d['convenio']}", None if created else _previous(d), self._after(d))

    def _participant(self, e: Event, d: dict[str, Any]) -> None:
        created = e.type.endswith(".created")
        after = self._after(d)
        if (d.get("changed") or {}).get("password_changed"):
            after["password_changed"] = True  # that it changed, never what to
        target = f"participant {d['convenio']}/{d['participant']}"
        self._row(e, target, None if created else _previous(d), after)

    @staticmethod
    def _after(d: dict[str, Any]) -> dict[str, Any]:
        after = _shown(d.get("record") or {})
        if d.get("reason"):
            after["reason"] = d["reason"]
        return after

    def _vehicle_saved(self, e: Event, d: dict[str, Any]) -> None:
        v = d["vehicle"]
        self._row(e, f"vehicle {d['convenio']}/{d['participant']}/{v['plate']}", None, _shown(v))

    def _vehicle_deleted(self, e: Event, d: dict[str, Any]) -> None:
        self._row(e, f"vehicle {d['convenio']}/{d['participant']}/{d['plate']}", {"plate": d["plate"]}, None)

    # -- keys and the integration key -------------------------------------------------------------
    @staticmethod
    def _key(d: dict[str, Any]) -> dict[str, Any]:
        names = ("id", "name", "permissions", "store", "terminal", "lineage", "previous", "previous_expires_at")
        return _shown({n: d[n] for n in names if d.get(n) not in (None, "")})

    def _apikey_created(self, e: Event, d: dict[str, Any]) -> None:
        self._row(e, f"apikey {d['id']}", None, self._key(d))

    def _apikey_rotated(self, e: Event, d: dict[str, Any]) -> None:
        # the key acted on is the old one; the new one is what it became
        self._row(e, f"apikey {d['previous']}", {"id": d["previous"]}, self._key(d))

    def _apikey_revoked(self, e: Event, d: dict[str, Any]) -> None:
        self._row(e, f"apikey {d['id']}", {"revoked": False}, {"revoked": True})

    def _integration_key_set(self, e: Event, d: dict[str, Any]) -> None:
        self._row(e, "integration key", None, None)  # the key is a secret, and so is its digest

    # -- stores and terminals ---------------------------------------------------------------------
    def _store_saved(self, e: Event, d: dict[str, Any]) -> None:
        self._row(e, f"store {d['store']['code']}", None, _shown(d["store"]))

    def _terminal_saved(self, e: Event, d: dict[str, Any]) -> None:
        self._row(e, f"terminal {d['store']}/{d['terminal']}", None, {"status": d["status"]})

    # -- credits and the ERP's order statuses ------------------------------------------------------
    def _credit_created(self, e: Event, d: dict[str, Any]) -> None:
        credit = d["credit"]
        after = _shown(credit)
        for name in ("return_id", "sale"):
            if d.get(name):
                after[name] = d[name]
        actor = f"apikey:{d['api_key']}" if d.get("api_key") else "system"
        self._row(e, f"credit {d['customer']}/{credit['id']}", None, after, actor)

    def _order_status_params_set(self, e: Event, d: dict[str, Any]) -> None:
        after = {
            "commit": d.get("commit", ""),
            "cancel": d.get("cancel", ""),
            "update_balance": d.get("update_balance"),
        }
        self._row(e, "order-status parameters", None, after)

    async def write(self, conn: asyncpg.Connection) -> None:
        if self.rows:  # one statement for the batch, one array per column
            await conn.execute(_INSERT, *(list(column) for column in zip(*self.rows, strict=True)))

    handlers: ClassVar[dict[str, Any]] = {
        "convenio.created": _convenio,
        "convenio.updated": _convenio,
        "participant.created": _participant,
        "participant.updated": _participant,
        "vehicle.saved": _vehicle_saved,
        "vehicle.deleted": _vehicle_deleted,
        "apikey.created": _apikey_created,
        "apikey.rotated": _apikey_rotated,
        "apikey.revoked": _apikey_revoked,
        "integration.key_set": _integration_key_set,
        "store.saved": _store_saved,
        "terminal.saved": _terminal_saved,
        "credit.created": _credit_created,
        "order.status_params_set": _order_status_params_set,
    }
