"""The fold: a batch of events becomes the final state of each projection row it touches, written
in the same transaction that stores the events in the journal.

A batch is folded in stream order, then written with a few statements per table. Events of one
convênio all live in its shard's stream and one writer at a time stores a stream
(ledger/writer/writer.py), so the fold sees them in the order the Lua scripts emitted them;
every money event carries the pool's balance and reserved after it, so the last one of the
batch is the row's state.

The projections, in the order they are written (a later one's rows may refer to an earlier
one's), are listed once: PROJECTIONS in ledger/writer/writer.py. Each says which event types it
folds (`handlers`); the catalogue of event types (ledger/writer/events.py) names them too, and a
test holds the two together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import asyncpg
import msgspec

from ledger.writer.events import Event

_encode = msgspec.json.Encoder().encode


def json_text(value: Any) -> str:
    return _encode(value).decode()


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
        if not self.rows and not self.deleted:
            return
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


class Projection:
    """One feature's tables, folded from a batch and written in the batch's transaction. A
    projection lists the event types it folds in `handlers` (type -> method)."""

    name: ClassVar[str]
    handlers: ClassVar[dict[str, Callable[[Any, Event, dict[str, Any]], None]]]

    def add(self, e: Event) -> None:
        handler = self.handlers.get(e.type)
        if handler is not None:
            handler(self, e, e.data)

    async def write(self, conn: asyncpg.Connection) -> None:
        raise NotImplementedError


class Fold:
    """One batch's events folded by every projection, then written in their order."""

    def __init__(self, projections: tuple[type[Projection], ...]) -> None:
        self.projections = [make() for make in projections]
        self._route: dict[str, list[Projection]] = defaultdict(list)
        for p in self.projections:
            for etype in p.handlers:
                self._route[etype].append(p)

    def add(self, e: Event) -> None:
        for projection in self._route.get(e.type, ()):
            projection.add(e)

    async def write(self, conn: asyncpg.Connection) -> None:
        for projection in self.projections:
            await projection.write(conn)


async def copy(conn: asyncpg.Connection, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Append-only rows, and only events new to the journal get here: COPY, no conflicts possible."""
    if rows:
        await conn.copy_records_to_table(table, records=rows, columns=columns)
