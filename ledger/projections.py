"""Projections: the tables the product queries, kept from the events in the same transaction
that stores them.

A batch is folded in stream order into the final state of each row it touches, then written
with a few statements per table. Events of one convênio all live in its shard's stream and
one writer at a time stores a stream (ledger/writer.py), so the fold sees them in the order
the Lua scripts emitted them; every money event carries the pool's balance and reserved after
it, so the last one of the batch is the row's state.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
import msgspec

from ledger.decisions import decision_of

_encode = msgspec.json.Encoder().encode


def _json(value: Any) -> str:
    return _encode(value).decode()


@dataclass(frozen=True)
class Event:
    protocol: str
    shard: str
    stream_id: str
    type: str
    at: datetime.datetime
    data: dict[str, Any]


def ms(value: Any) -> datetime.datetime | None:
    if value in (None, "", 0, "0"):
        return None
    return datetime.datetime.fromtimestamp(int(value) / 1000, datetime.UTC)


@dataclass
class Table:
    """Final column values per primary key; `full` rows are upserted, others updated."""

    name: str
    pk: tuple[str, ...]
    rows: dict[tuple, dict[str, Any]] = field(default_factory=dict)
    full: set[tuple] = field(default_factory=set)
    deleted: set[tuple] = field(default_factory=set)
    types: dict[str, str] = field(default_factory=dict)

    def put(self, key: tuple, columns: dict[str, Any], full: bool = False) -> None:
        self.deleted.discard(key)
        if full:
            # a whole record: it overrides what it carries, and keeps the batch's earlier
            # changes to columns it does not carry (a participant's password hash)
            self.rows[key] = {**self.rows.get(key, {}), **columns}
            self.full.add(key)
        else:
            self.rows.setdefault(key, {}).update(columns)

    def delete(self, key: tuple) -> None:
        self.rows.pop(key, None)
        self.full.discard(key)
        self.deleted.add(key)

    async def write(self, conn: asyncpg.Connection) -> None:
        # one statement per shape of row, its values as arrays (unnest): a thousand rows cost one
        # round trip and one plan instead of a thousand executions
        self.types = await column_types(conn, self.name)
        groups: dict[tuple[bool, tuple[str, ...]], list[tuple]] = defaultdict(list)
        for key, cols in self.rows.items():
            names = tuple(sorted(cols))
            groups[(key in self.full, names)].append(key + tuple(cols[n] for n in names))
        for (full, names), values in groups.items():
            await conn.execute(self._sql(full, names), *(list(column) for column in zip(*values, strict=True)))
        if self.deleted:
            where = " AND ".join(f"{c} = ${i + 1}" for i, c in enumerate(self.pk))
            await conn.executemany(f"DELETE FROM {self.name} WHERE {where}", sorted(self.deleted))  # noqa: S608

    def _sql(self, full: bool, names: tuple[str, ...]) -> str:
        cols = [*self.pk, *names]
        quoted = ", ".join(f'"{c}"' for c in cols)
        # identifiers are this module's constants and the catalog's type names; every value is
        # a parameter (one array per column)
        arrays = ", ".join(f"${i + 1}::{self.types[c]}[]" for i, c in enumerate(cols))
        if full:
            updates = ", ".join(f'"{n}" = EXCLUDED."{n}"' for n in names)
            conflict = ", ".join(self.pk)
            insert = f"INSERT INTO {self.name} ({quoted}) SELECT * FROM unnest({arrays}) "  # noqa: S608
            return insert + f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
        sets = ", ".join(f'"{n}" = v."{n}"' for n in names)
        where = " AND ".join(f't."{c}" = v."{c}"' for c in self.pk)
        return f"UPDATE {self.name} AS t SET {sets} FROM unnest({arrays}) AS v({quoted}) WHERE {where}"  # noqa: S608


_COLUMN_TYPES: dict[str, dict[str, str]] = {}


async def column_types(conn: asyncpg.Connection, table: str) -> dict[str, str]:
    """Each column's SQL type, for the arrays of a set-based write (the schema is the
    migrations', the same in every database: read once per process)."""
    if table not in _COLUMN_TYPES:
        rows = await conn.fetch(
            "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute"
            " WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped",
            table,
        )
        _COLUMN_TYPES[table] = {r["attname"]: r["type"] for r in rows}
    return _COLUMN_TYPES[table]


class Extension(Protocol):
    """Another feature's projections, folded from the same batch and written in the same
    transaction, after the core tables (so its rows may refer to them)."""

    def add(self, e: Event) -> None: ...

    async def write(self, conn: asyncpg.Connection) -> None: ...


#: factories of the extensions every batch's Fold carries (registered by their modules,
#: imported at the end of this one)
EXTENSIONS: list[Callable[[], Extension]] = []


class Fold:
    """One batch's events folded into row changes, in the order the tables must be written."""

    def __init__(self) -> None:
        self.extensions = [make() for make in EXTENSIONS]
        self.convenios = Table("convenios", ("code",))
        self.participants = Table("participants", ("convenio", "participant"))
        self.vehicles = Table("vehicles", ("convenio", "participant", "plate"))
        self.empenhos = Table("empenhos", ("id",))
        self.api_keys = Table("api_keys", ("id",))
        self.integration = Table("integration_key", ("singleton",))
        self.history: list[tuple] = []
        self.movements: list[tuple] = []
        self.decisions: list[tuple] = []

    # -- the fold -----------------------------------------------------------------------------
    def add(self, e: Event) -> None:
        d = e.data
        handler = getattr(self, "_" + e.type.replace(".", "_"), None)
        if handler is not None:
            handler(e, d)
        for extension in self.extensions:
            extension.add(e)
        decision = decision_of(e.type, e.protocol, d)
        if decision is not None:
            self.decisions.append(
                (
                    e.protocol,
                    e.at,
                    decision.kind,
                    decision.outcome,
                    decision.http_status,
                    decision.error,
                    decision.convenio,
                    decision.participant,
                    decision.empenho_id,
                    _json(decision.request),
                    _json(decision.answer),
                )
            )

    def _pool(self, d: dict[str, Any]) -> None:
        """The pool's balance and reserved after a money event."""
        money = {"balance": int(d["balance"]), "reserved": int(d["reserved"])}
        if d["pool"] == "C":
            self.convenios.put((d["convenio"],), money)
        else:
            self.participants.put((d["convenio"], d["participant"]), money)

    def _movement(self, e: Event, d: dict[str, Any], kind: str, amount: int, participant: str | None) -> None:
        if amount == 0:
            return
        self.movements.append(
            (
                e.protocol,
                d["convenio"],
                participant,
                kind,
                amount,
                int(d["balance"]),
                d.get("pool", "P"),
                d.get("id"),
                d.get("terminal"),
                d.get("store"),
                d.get("sale"),
                d.get("coupon"),
                e.at,
                None,
            )
        )

    def _batch(self, e: Event, d: dict[str, Any], kind: str) -> None:
        """A chunk of a month's batch (balance_batch.lua): per pool, its change and its state after."""
        convenio, shared = d["convenio"], d["pool"] == "C"
        for i, (code, delta, balance, reserved) in enumerate(d["items"]):
            money = {"balance": int(balance), "reserved": int(reserved)}
            if shared:
                self.convenios.put((convenio,), money)
            else:
                self.participants.put((convenio, code), money)
            if int(delta):
                row = (f"{e.protocol}.{i}", convenio, None if shared else code, kind, int(delta), int(balance))
                self.movements.append((*row, d["pool"], None, None, None, None, None, e.at, d["key"]))

    def _balance_rolled_over(self, e: Event, d: dict[str, Any]) -> None:
        self._batch(e, d, "ROLLOVER")

    def _balance_restored(self, e: Event, d: dict[str, Any]) -> None:
        self._batch(e, d, "RESTORE")

    def _history(self, e: Event, d: dict[str, Any], status: str, amount: int) -> None:
        self.history.append((e.protocol, d["id"], status, e.at, amount))

    # registry
    def _convenio_created(self, e: Event, d: dict[str, Any]) -> None:
        r = d["record"]
        row = {
            "name": r.get("name", ""),
            "status": r["status"],
            "shared": r.get("shared") == "1",
            "total_limit": int(r.get("total_limit") or 0),
            "tolerance": int(r.get("tolerance") or 0),
            "allocated": int(r.get("allocated") or 0),
            "balance": int(r.get("balance") or 0),
            "reserved": int(r.get("reserved") or 0),
            "record": _json(r),
            "created_at": ms(r["created_at"]),
            "updated_at": ms(r["updated_at"]),
        }
        self.convenios.put((d["convenio"],), row, full=True)
        delta = row["balance"] - int(d.get("previous_balance", 0))
        if row["shared"] or delta:
            pool = {**d, "balance": row["balance"], "pool": "C"}
            self._movement(e, pool, "LIMIT_CHANGE", delta, None)

    _convenio_updated = _convenio_created

    def _participant_created(self, e: Event, d: dict[str, Any]) -> None:
        r = d["record"]
        key = (d["convenio"], d["participant"])
        row = {
            "name": r.get("name", ""),
            "document": r.get("document", ""),
            "status": r["status"],
            "limit": int(r.get("limit") or 0),
            "balance": int(r.get("balance") or 0),
            "reserved": int(r.get("reserved") or 0),
            "record": _json(r),
            "created_at": ms(r["created_at"]),
            "updated_at": ms(r["updated_at"]),
        }
        self.participants.put(key, row, full=True)
        if d.get("pw_hash"):  # a new password also clears any lock
            self.participants.put(key, {"pw_hash": d["pw_hash"], "pw_locked_until": None})
        if "convenio_allocated" in d:
            self.convenios.put((d["convenio"],), {"allocated": int(d["convenio_allocated"])})
        delta = row["limit"] - int(d.get("previous_limit") or 0)
        self._movement(e, {**d, "balance": row["balance"], "pool": "P"}, "LIMIT_CHANGE", delta, d["participant"])

    _participant_updated = _participant_created

    def _password_locked(self, e: Event, d: dict[str, Any]) -> None:
        self.participants.put((d["convenio"], d["participant"]), {"pw_locked_until": ms(d["locked_until"])})

    def _vehicle_saved(self, e: Event, d: dict[str, Any]) -> None:
        v = d["vehicle"]
        row = {
            "description": v.get("description", ""),
            "registered_at": ms(v["registered_at"]),
            "last_km": int(v["last_km"]) if v.get("last_km") is not None else None,
            "last_km_at": ms(v.get("last_km_at")),
        }
        self.vehicles.put((d["convenio"], d["participant"], v["plate"]), row, full=True)

    def _vehicle_deleted(self, e: Event, d: dict[str, Any]) -> None:
        self.vehicles.delete((d["convenio"], d["participant"], d["plate"]))

    def _apikey_created(self, e: Event, d: dict[str, Any]) -> None:
        row = {"digest": d["digest"], "permissions": d["permissions"], "name": d.get("name", ""), "created_at": e.at}
        self.api_keys.put((d["id"],), row, full=True)

    def _apikey_revoked(self, e: Event, d: dict[str, Any]) -> None:
        self.api_keys.put((d["id"],), {"revoked_at": e.at})

    def _integration_key_set(self, e: Event, d: dict[str, Any]) -> None:
        if d.get("digest"):
            self.integration.put((True,), {"digest": d["digest"], "updated_at": e.at}, full=True)

    # empenhos
    def _empenho_held(self, e: Event, d: dict[str, Any]) -> None:
        km = d.get("odometer_km")
        row = {
            "convenio": d["convenio"],
            "participant": d["participant"],
            "amount": int(d["amount"]),
            "pool": d["pool"],
            "status": "PENDING",
            "terminal": d["terminal"],
            "store": d["store"],
            "sale": d["sale"],
            "plate": d.get("plate") or "",
            "odometer_km": int(km) if km not in (None, "") else None,
            "api_key_id": d.get("api_key") or "",
            "order_ref": d.get("order") or None,
            "protocol": e.protocol,
            "created_at": e.at,
            "expires_at": ms(d["expires_at"]),
        }
        self.empenhos.put((d["id"],), row, full=True)
        self._history(e, d, "PENDING", int(d["amount"]))
        self._pool(d)

    def _empenho_committed(self, e: Event, d: dict[str, Any]) -> None:
        amount = int(d["amount"])
        self.empenhos.put(
            (d["id"],),
            {
                "status": "COMMITTED",
                "committed_amount": amount,
                "coupon": d["coupon"],
                "committed_at": e.at,
                "ended_at": e.at,
                "commit_result": _json(d.get("answer") or {}),
            },
        )
        self._history(e, d, "COMMITTED", amount)
        self._pool(d)
        self._movement(e, d, "SALE", -amount, d["participant"])
        km = d.get("odometer_km")
        if d.get("plate") and km not in (None, ""):
            key = (d["convenio"], d["participant"], d["plate"])
            if key not in self.vehicles.deleted:
                self.vehicles.put(key, {"last_km": int(km), "last_km_at": e.at})

    def _ended(self, e: Event, d: dict[str, Any], status: str) -> None:
        cols: dict[str, Any] = {"status": status, "ended_at": e.at}
        if status in ("CANCELLED", "REVERSED"):
            cols["cancel_reason"] = d.get("reason") or None
            cols["cancel_result"] = _json(d.get("answer") or {})
        self.empenhos.put((d["id"],), cols)
        self._history(e, d, status, int(d["amount"]))
        self._pool(d)

    def _empenho_cancelled(self, e: Event, d: dict[str, Any]) -> None:
        self._ended(e, d, "CANCELLED")

    def _empenho_reversed(self, e: Event, d: dict[str, Any]) -> None:
        self._ended(e, d, "REVERSED")
        self._movement(e, d, "REVERSAL", int(d["amount"]), d["participant"])

    def _empenho_expired(self, e: Event, d: dict[str, Any]) -> None:
        self._ended(e, d, "EXPIRED")

    # -- writing ------------------------------------------------------------------------------
    async def write(self, conn: asyncpg.Connection) -> None:
        # parents before children: the foreign keys check each statement
        for table in (self.convenios, self.participants, self.vehicles, self.empenhos, self.api_keys, self.integration):
            await table.write(conn)
        # append-only, and only events new to the journal get here: COPY, no conflicts possible
        if self.history:
            await conn.copy_records_to_table(
                "empenho_history", records=self.history, columns=("protocol", "empenho_id", "status", "at", "amount")
            )
        if self.movements:
            await conn.copy_records_to_table("movements", records=self.movements, columns=MOVEMENT_COLUMNS)
        if self.decisions:
            await conn.copy_records_to_table("decisions", records=self.decisions, columns=DECISION_COLUMNS)
        for extension in self.extensions:
            await extension.write(conn)


MOVEMENT_COLUMNS = (
    "protocol",
    "convenio",
    "participant",
    "kind",
    "amount",
    "balance_after",
    "pool",
    "empenho_id",
    "terminal",
    "store",
    "sale",
    "coupon",
    "at",
    "batch_key",
)
DECISION_COLUMNS = (
    "protocol",
    "at",
    "kind",
    "outcome",
    "http_status",
    "error",
    "convenio",
    "participant",
    "empenho_id",
    "request",
    "answer",
)


async def apply(conn: asyncpg.Connection, events: list[Event]) -> None:
    """Apply newly stored events (in stream order) to the projections, inside the caller's
    transaction."""
    fold = Fold()
    for e in events:
        fold.add(e)
    await fold.write(conn)


# the other features' projections register themselves on import
from ledger import credit_projections, history_projections  # noqa: E402, F401
