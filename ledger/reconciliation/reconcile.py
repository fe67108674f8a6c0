"""Reconciliation of the terminals' closing files (fechamento de caixa) with the ledger: what each
terminal says it sold on convênio, and took back (devoluções), line by line, against the
empenhos the ledger holds as committed and the returns it holds. docs/reconciliation.md is the
operator's page.

The closing file is CSV text in UTF-8 (a BOM is allowed), one sale or return per line, its first
line the header naming the columns (any order, names case-insensitive):

    store,terminal,date,coupon,convenio,participant,amount[,type][,return]
    LOJA01,PDV01,2025-11-17,CUPOM-000123,EMP001,CLI001,578
    LOJA02,PDV07,2025-11-19,CUPOM-000123,EMP001,CLI001,-1200,RETURN,R3-01KB...

- date: the business day, YYYY-MM-DD (the day of the sale, or of the return, in its store's time zone)
- amount: an integer number of centavos (578 is R$ 5,78); never a decimal
- type (optional column; empty means SALE): SALE is matched against the ledger's sales,
  RETURN against its returns; ADJUSTMENT and INFO lines are informative ("Informativo"):
  listed, never reconciled, and may leave coupon and participant empty and carry any amount
  (also zero or negative)
- a RETURN line is a return taken at its store and terminal on its day: coupon is the coupon of
  the sale returned, amount the centavos given back written negative (-1200), and the column
  `return` (optional for files without returns) the return's id as the gateway answered it
- the separator is a comma, or a semicolon when the header line has semicolons and no comma
- blank lines are skipped; a SALE line may not repeat another's store, terminal, date,
  coupon, convênio and participant, nor a RETURN line another's return

A file with any bad line is refused whole (nothing is imported) and every bad line is
reported with its line number: a closing is a terminal's whole day, and half of it would make
the day's totals wrong without anyone noticing. The corrected file is then imported. A file
is known by its content's SHA-256: importing the same file again changes nothing.

Each line becomes a record, and `run` moves records between these states, appending to the
record's history (when, who, state, note) at every change:

    NOT_RECONCILED  not matched (yet); `missing` says which side lacks the sale: LEDGER (the
                    file reports a sale the ledger does not have) or FILE (a committed sale no
                    file reported: such ledger-side records are made by `run`)
    RECONCILED      the ledger has the sale, for the same amount; the convênio's financial
                    account (the receivable) gets the amount
    DIVERGENT       the ledger has the sale but for another amount, or reversed it (a reversed
                    sale is not a live one: its amount in the ledger is 0, and the note says
                    when it was reversed); a sale reversed after it was reconciled turns its
                    record DIVERGENT and gives the amount back to the receivable
    INFORMATIVE     an informative line
    FAILED          still not matched when the look-back window ran out

A sale of the ledger is matched by a SALE line with the same store, terminal, business day,
coupon, convênio and participant; a return by a RETURN line naming it with the store and
terminal it was taken at, its business day, its sale's coupon, convênio and participant. A
reconciled return given back to the pool takes its amount off the receivable; one refunded as a
DEVOLUCAO credit moves nothing (the convênio still pays for the sale).

A run on day D tries again every NOT_RECONCILED or DIVERGENT record while D minus its window
start (its date, or the day its reconciliation was undone) is at most the window (3 days by
default); past it, a NOT_RECONCILED record becomes FAILED. A line that matches the ledger's
amount takes the sale (or return) from a DIVERGENT line of an earlier file (a correction). Runs
are idempotent: the same run again changes nothing.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import re
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

import asyncpg

from gateway.platform import locks
from gateway.platform.clock import LOCAL, any_zone_bounds, local_today
from gateway.platform.locks import Lock
from gateway.platform.money import brl
from gateway.platform.progress import Progress, Tick, ticker

#: the business day of a sale is its date here
DEFAULT_WINDOW = 3  # days
NOT_RECONCILED, RECONCILED, DIVERGENT, INFORMATIVE, FAILED = (
    "NOT_RECONCILED",
    "RECONCILED",
    "DIVERGENT",
    "INFORMATIVE",
    "FAILED",
)
STATES = (NOT_RECONCILED, RECONCILED, DIVERGENT, INFORMATIVE, FAILED)
SALE, RETURN = "SALE", "RETURN"
RECONCILED_TYPES = (SALE, RETURN)
INFORMATIVE_TYPES = ("ADJUSTMENT", "INFO")
COLUMNS = ("store", "terminal", "date", "coupon", "convenio", "participant", "amount")
OPTIONAL_COLUMNS = ("type", "return")
MAX_TEXT = 100  # characters in a code (store, terminal, coupon, convênio, participant)
MAX_AMOUNT = 10**13  # centavos: R$ 100 bilhões, beyond any closing; sums stay far inside bigint
MAX_NOTE = 500
CHUNK = 2000  # rows per statement when a run or an import writes many

NO_FILE_YET = "no closing file reported this sale yet"
NO_SALE = "no committed sale in the ledger for this store, terminal, day, coupon, convênio and participant"
NO_RETURN_FILE_YET = "no closing file reported this return yet"
NO_RETURN = "no return of this id in the ledger"


class ReconciliationError(Exception):
    """An operator's request that cannot be done; the message says why."""


class UnknownRecord(ReconciliationError):
    """No reconciliation record with this id."""


class NotUndoable(ReconciliationError):
    """The record is in a state whose reconciliation cannot be undone."""


class UnknownConvenio(ReconciliationError):
    """No convênio of this code, nor any receivable movement of it."""


class ClosingConflict(ReconciliationError):
    """A closing was posted before for this store, terminal and day with other lines."""


@dataclass(frozen=True)
class Problem:
    line: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "message": self.message}


class BadFile(ReconciliationError):
    """The closing file was refused; `problems` names every bad line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(f"the closing file was refused ({len(problems)} problem(s)); nothing was imported")


# --- days --------------------------------------------------------------------------------------
# The day a sale (or a return) counts on is its store's business day: the instant in the store's
# time zone (America/Sao_Paulo for a store not registered), computed by Postgres from `stores`
# (the queries below spell it out: SQL stays constant text).


def _when(at: datetime.datetime) -> str:
    return at.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M")


# --- the closing file ------------------------------------------------------------------------
@dataclass(frozen=True)
class Line:
    line: int
    type: str
    store: str
    terminal: str
    date: datetime.date
    coupon: str
    convenio: str
    participant: str
    amount: int
    return_id: str = ""  # a RETURN line's return

    @property
    def key(self) -> tuple[Any, ...]:
        """What no two lines of a file may share: a sale's store, terminal, day, coupon,
        convênio and participant; a return's id."""
        if self.type == RETURN:
            return (RETURN, self.return_id)
        return (self.store, self.terminal, self.date, self.coupon, self.convenio, self.participant)


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INTEGER = re.compile(r"^-?\d+$")
HEADER = ",".join(COLUMNS) + "[,type][,return]"


def parse(data: bytes) -> list[Line]:
    """The lines of a closing file, or BadFile naming every bad one."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BadFile([Problem(line, f"not UTF-8 text (byte {exc.start})")]) from None
    if "\x00" in text:
        raise BadFile([Problem(text[: text.index("\x00")].count("\n") + 1, "a NUL character: not a text file")])
    first = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise BadFile([Problem(1, f"unreadable header: {exc}")]) from None
    if not header or not any(h.strip() for h in header):
        raise BadFile([Problem(1, f"the first line must be the header {HEADER}")])
    names = [h.strip().lower() for h in header]
    missing = [c for c in COLUMNS if c not in names]
    unknown = [n for n in names if n not in COLUMNS + OPTIONAL_COLUMNS]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if missing or unknown or repeated:
        parts = [
            f"missing column(s) {', '.join(missing)}" if missing else "",
            f"unknown column(s) {', '.join(unknown)}" if unknown else "",
            f"repeated column(s) {', '.join(repeated)}" if repeated else "",
        ]
        raise BadFile([Problem(1, "; ".join(p for p in parts if p) + f" (the header is {HEADER})")])
    index = {name: i for i, name in enumerate(names)}

    lines: list[Line] = []
    problems: list[Problem] = []
    seen: dict[tuple, int] = {}
    while True:
        try:
            row = next(reader, None)
        except csv.Error as exc:
            problems.append(Problem(reader.line_num, f"unreadable CSV: {exc}"))
            break
        if row is None:
            break
        number = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            problems.append(Problem(number, f"{len(row)} field(s) where the header has {len(names)}"))
            continue
        parsed = _line(number, {name: row[i].strip() for name, i in index.items()})
        if isinstance(parsed, Problem):
            problems.append(parsed)
            continue
        if parsed.type in RECONCILED_TYPES:
            if parsed.key in seen:
                what = "return" if parsed.type == RETURN else "sale"
                problems.append(Problem(number, f"the same {what} as line {seen[parsed.key]}"))
                continue
            seen[parsed.key] = number
        lines.append(parsed)
    if problems:
        raise BadFile(problems)
    return lines


def _line(number: int, cells: dict[str, str]) -> Line | Problem:
    errors: list[str] = []
    kind = (cells.get("type") or SALE).upper()
    if kind not in RECONCILED_TYPES and kind not in INFORMATIVE_TYPES:
        expected = ", ".join(RECONCILED_TYPES + INFORMATIVE_TYPES[:-1]) + f" or {INFORMATIVE_TYPES[-1]}"
        errors.append(f"type {cells['type']!r}: expected {expected}")
        kind = SALE
    returned = cells.get("return", "")
    required = ("store", "terminal", "convenio") + (("coupon", "participant") if kind in RECONCILED_TYPES else ())
    for name in required:
        if not cells[name]:
            errors.append(f"{name} is empty")
    if kind == RETURN and not returned:
        errors.append("return is empty: a RETURN line names the return's id (the column return)")
    elif kind != RETURN and returned:
        errors.append(f"return {returned!r} on a {kind} line: only a RETURN line names a return")
    for name in ("store", "terminal", "coupon", "convenio", "participant", "return"):
        if len(cells.get(name, "")) > MAX_TEXT:
            errors.append(f"{name} is longer than {MAX_TEXT} characters")
    day = None
    if not _DATE.match(cells["date"]):
        errors.append(f"date {cells['date']!r}: expected YYYY-MM-DD")
    else:
        try:
            day = datetime.date.fromisoformat(cells["date"])
        except ValueError:
            errors.append(f"date {cells['date']!r} is not a day of the calendar")
    amount = 0
    if not _INTEGER.match(cells["amount"]):
        errors.append(f"amount {cells['amount']!r}: expected an integer number of centavos (578 is R$ 5,78)")
    else:
        amount = int(cells["amount"])
        if abs(amount) > MAX_AMOUNT:
            errors.append(f"amount {amount} is beyond {MAX_AMOUNT} centavos")
        elif kind == SALE and amount <= 0:
            errors.append(f"amount {amount}: a sale is more than zero centavos")
        elif kind == RETURN and amount >= 0:
            errors.append(
                f"amount {amount}: a return is written negative, the centavos given back (-1200 is R$ 12,00 returned)"
            )
    if errors or day is None:
        return Problem(number, "; ".join(errors))
    return Line(
        number,
        kind,
        cells["store"],
        cells["terminal"],
        day,
        cells["coupon"],
        cells["convenio"],
        cells["participant"],
        amount,
        returned if kind == RETURN else "",
    )


# --- records ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    """A row of reconciliation_records (with its file's name)."""

    id: int
    origin: str  # FILE or LEDGER
    file_id: int | None
    file_name: str | None
    line: int | None
    type: str
    store: str
    terminal: str
    business_date: datetime.date
    coupon: str
    convenio: str
    participant: str
    amount: int
    empenho_id: str | None
    ledger_amount: int | None
    state: str
    missing: str | None
    note: str
    partner: int | None
    window_from: datetime.date
    last_run_on: datetime.date | None
    updated_at: datetime.datetime | None
    return_id: str | None = None  # a RETURN record's return (a line's: as the file names it)

    @property
    def key(self) -> tuple[Any, ...]:
        """What a ledger item must share to match: a sale's store, terminal, day, coupon, convênio
        and participant; a return's the same (where and when it was taken, its sale's coupon,
        convênio and participant) and its id."""
        key = (self.store, self.terminal, self.business_date, self.coupon, self.convenio, self.participant)
        return (*key, self.return_id) if self.type == RETURN else key

    @property
    def ref(self) -> str | None:
        """The ledger item the record is about: a return's id, a sale's empenho."""
        return self.return_id if self.type == RETURN else self.empenho_id

    @property
    def claims(self) -> str | None:
        """The sale (or return) this record holds (a file line RECONCILED or DIVERGENT with it)."""
        return self.ref if self.origin == "FILE" and self.state in (RECONCILED, DIVERGENT) else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "origin": self.origin,
            "file": self.file_id,
            "file_name": self.file_name,
            "line": self.line,
            "type": self.type,
            "store": self.store,
            "terminal": self.terminal,
            "date": self.business_date.isoformat(),
            "coupon": self.coupon,
            "convenio": self.convenio,
            "participant": self.participant,
            "amount": self.amount,
            "empenho": self.empenho_id,
            "return": self.return_id,
            "ledger_amount": self.ledger_amount,
            "state": self.state,
            "missing": self.missing,
            "note": self.note,
            "partner": self.partner,
            "window_from": self.window_from.isoformat(),
            "last_run_on": self.last_run_on.isoformat() if self.last_run_on else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


_RECORD_FIELDS = tuple(f.name for f in fields(Record))
TRACKED = ("state", "missing", "note", "empenho_id", "ledger_amount", "partner", "window_from")
# INSERT_RECORDS' $2.. in order
_INSERTED = (
    "origin",
    "file_id",
    "line",
    "type",
    "store",
    "terminal",
    "business_date",
    "coupon",
    "convenio",
    "participant",
    "amount",
    "empenho_id",
    "ledger_amount",
    "state",
    "missing",
    "note",
    "partner",
    "window_from",
    "last_run_on",
    "return_id",
)

RECORDS = """SELECT r.id, r.origin, r.file_id, f.name AS file_name, r.line, r.type, r.store, r.terminal,
       r.business_date, r.coupon, r.convenio, r.participant, r.amount, r.empenho_id, r.ledger_amount,
       r.state, r.missing, r.note, r.partner, r.window_from, r.last_run_on, r.updated_at, r.return_id
FROM reconciliation_records r LEFT JOIN closing_files f ON f.id = r.file_id"""


def _record(row: asyncpg.Record) -> Record:
    return Record(*(row[name] for name in _RECORD_FIELDS))


@dataclass(frozen=True)
class Sale:
    """A committed (or since reversed) empenho, as the ledger's projection holds it."""

    id: str
    store: str
    terminal: str
    day: datetime.date
    coupon: str
    convenio: str
    participant: str
    status: str  # COMMITTED or REVERSED
    amount: int  # committed_amount
    committed_at: datetime.datetime
    ended_at: datetime.datetime | None

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.store, self.terminal, self.day, self.coupon, self.convenio, self.participant)

    @property
    def sale_id(self) -> str:
        return self.id


@dataclass(frozen=True)
class Return:
    """A return (devolução) of a sale, as the ledger holds it (empenho_returns): taken at its own
    store and terminal, on its own day; its amount negative, as a closing file writes it."""

    id: str
    empenho_id: str
    store: str
    terminal: str
    day: datetime.date
    coupon: str  # the sale's
    convenio: str
    participant: str
    amount: int  # -empenho_returns.amount
    refund: str  # POOL or CREDIT
    at: datetime.datetime

    status: ClassVar[str] = "COMMITTED"  # a return is never undone in the ledger
    ended_at: ClassVar[None] = None

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.store, self.terminal, self.day, self.coupon, self.convenio, self.participant, self.id)

    @property
    def sale_id(self) -> str:
        return self.empenho_id

    @property
    def committed_at(self) -> datetime.datetime:
        return self.at


SALE_COLUMNS = """SELECT e.id, e.store, e.terminal, e.coupon, e.convenio, e.participant, e.status,
       e.committed_amount, e.committed_at, e.ended_at,
       (e.committed_at AT TIME ZONE coalesce(st.time_zone, 'America/Sao_Paulo'))::date AS business_date
FROM empenhos e LEFT JOIN stores st ON st.code = e.store"""
# $1 and $2 bound the day in every Brazilian zone (the index on the instant), $3 is the day
SALES_BETWEEN = (
    SALE_COLUMNS
    + """
WHERE e.committed_at >= $1 AND e.committed_at < $2 AND e.status IN ('COMMITTED', 'REVERSED')
  AND (e.committed_at AT TIME ZONE coalesce(st.time_zone, 'America/Sao_Paulo'))::date = $3"""
)
SALES_BY_ID = SALE_COLUMNS + " WHERE e.id = ANY($1::text[]) AND e.status IN ('COMMITTED', 'REVERSED')"


def _sale(row: asyncpg.Record) -> Sale:
    return Sale(
        row["id"],
        row["store"],
        row["terminal"],
        row["business_date"],
        row["coupon"] or "",
        row["convenio"],
        row["participant"],
        row["status"],
        row["committed_amount"],
        row["committed_at"],
        row["ended_at"],
    )


RETURN_COLUMNS = """SELECT r.id, r.empenho_id, r.store, r.terminal, e.coupon, e.convenio, e.participant, r.amount,
       r.refund, r.at, (r.at AT TIME ZONE coalesce(st.time_zone, 'America/Sao_Paulo'))::date AS business_date
FROM empenho_returns r JOIN empenhos e ON e.id = r.empenho_id LEFT JOIN stores st ON st.code = r.store"""
RETURNS_BETWEEN = (
    RETURN_COLUMNS
    + """
WHERE r.at >= $1 AND r.at < $2 AND (r.at AT TIME ZONE coalesce(st.time_zone, 'America/Sao_Paulo'))::date = $3"""
)
RETURNS_BY_ID = RETURN_COLUMNS + " WHERE r.id = ANY($1::text[])"


def _return(row: asyncpg.Record) -> Return:
    return Return(
        row["id"],
        row["empenho_id"],
        row["store"],
        row["terminal"],
        row["business_date"],
        row["coupon"] or "",
        row["convenio"],
        row["participant"],
        -row["amount"],
        row["refund"],
        row["at"],
    )


Item = Sale | Return


def _elsewhere_note(r: Return) -> str:
    return (
        f"the ledger's return {r.id} was taken at {r.store} {r.terminal} on {r.day.isoformat()}, of the sale "
        f"{r.coupon or r.empenho_id} ({r.convenio} {r.participant}): not where, when or of what this line says"
    )


def _reversed_note(sale: Sale) -> str:
    when = f" on {_when(sale.ended_at)}" if sale.ended_at else ""
    return f"the ledger reversed the sale {sale.id}{when}: it is not a live sale (its amount is 0)"


# --- writing ---------------------------------------------------------------------------------

INSERT_RECORDS = """
INSERT INTO reconciliation_records (origin, file_id, line, type, store, terminal, business_date, coupon, convenio,
                                    participant, amount, empenho_id, ledger_amount, state, missing, note, partner,
                                    window_from, last_run_on, return_id, updated_at)
SELECT r.origin, r.file_id, r.line, r.type, r.store, r.terminal, r.business_date, r.coupon, r.convenio,
       r.participant, r.amount, r.empenho_id, r.ledger_amount, r.state, r.missing, r.note, r.partner,
       r.window_from, r.last_run_on, r.return_id, $1
FROM unnest($2::text[], $3::bigint[], $4::int[], $5::text[], $6::text[], $7::text[], $8::date[], $9::text[],
            $10::text[], $11::text[], $12::bigint[], $13::text[], $14::bigint[], $15::text[], $16::text[],
            $17::text[], $18::bigint[], $19::date[], $20::date[], $21::text[])
     WITH ORDINALITY AS r(origin, file_id, line, type, store, terminal, business_date, coupon, convenio,
                          participant, amount, empenho_id, ledger_amount, state, missing, note, partner,
                          window_from, last_run_on, return_id, n)
ORDER BY r.n
RETURNING id"""

UPDATE_RECORD = """
UPDATE reconciliation_records
SET state = $2, missing = $3, note = $4, empenho_id = $5, ledger_amount = $6, partner = $7, window_from = $8,
    updated_at = $9
WHERE id = $1"""

INSERT_HISTORY = """
INSERT INTO reconciliation_history (record, at, by, state, note)
SELECT h.record, $1, $2, h.state, h.note
FROM unnest($3::bigint[], $4::text[], $5::text[]) WITH ORDINALITY AS h(record, state, note, n)
ORDER BY h.n
RETURNING seq, record"""

NETS = """SELECT record, sum(amount)::bigint AS net FROM receivable_movements
WHERE record = ANY($1::bigint[]) GROUP BY record"""

INSERT_MOVEMENTS = """
INSERT INTO receivable_movements (history_seq, record, convenio, participant, kind, amount, empenho_id,
                                  business_date, return_id, at, by)
SELECT m.history_seq, m.record, m.convenio, m.participant, m.kind, m.amount, m.empenho_id, m.business_date,
       m.return_id, $1, $2
FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::date[],
            $11::text[])
     WITH ORDINALITY AS m(history_seq, record, convenio, participant, kind, amount, empenho_id, business_date,
                          return_id, n)
ORDER BY m.n"""

# a reversed sale's returns before the reversal (the reversal gave back only the rest)
RETURNED_BEFORE_REVERSAL = """SELECT id, returned FROM empenhos
WHERE id = ANY($1::text[]) AND status = 'REVERSED' AND returned > 0"""
# of the returns given, those given back to the convênio's pool (not a DEVOLUCAO credit)
POOL_RETURNS = "SELECT id FROM empenho_returns WHERE id = ANY($1::text[]) AND refund = 'POOL'"

TOUCH = """UPDATE reconciliation_records SET last_run_on = $1
WHERE id = ANY($2::bigint[]) AND (last_run_on IS NULL OR last_run_on < $1)"""


@dataclass
class Change:
    before: Record
    after: Record
    debit_kind: str = "UNDONE"  # the receivable's kind when this change takes an amount back


def _changed(before: Record, after: Record) -> bool:
    return any(getattr(before, name) != getattr(after, name) for name in TRACKED)


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _insert(conn: asyncpg.Connection, records: Sequence[Record], by: str, now: datetime.datetime) -> list[int]:
    """New records, each with its first history row; their ids, in order."""
    ids: list[int] = []
    for part in _chunks(records):
        columns = [[getattr(r, name) for r in part] for name in _INSERTED]
        rows = await conn.fetch(INSERT_RECORDS, now, *columns)
        new = [row["id"] for row in rows]
        await conn.fetch(INSERT_HISTORY, now, by, new, [r.state for r in part], [r.note for r in part])
        ids.extend(new)
    return ids


async def _apply(
    conn: asyncpg.Connection, changes: Sequence[Change], by: str, now: datetime.datetime
) -> tuple[int, int]:
    """Write the changes, a history row each, and the receivable's movements they make.
    Returns (movements, their sum)."""
    if not changes:
        return 0, 0
    # a sale may pass from one line to another in one run, and the unique index on claims is
    # checked row by row: every record lets go of its sale before any record takes one
    acquiring = [c for c in changes if c.after.claims and c.after.claims != c.before.claims]
    acquiring_ids = {c.after.id for c in acquiring}
    first = [c.after for c in changes if c.after.id not in acquiring_ids]
    first += [
        replace(c.after, state=NOT_RECONCILED, empenho_id=None, missing=None) for c in acquiring if c.before.claims
    ]
    then = [c.after for c in acquiring]
    for part in _chunks(first + then):
        await conn.executemany(
            UPDATE_RECORD,
            [
                (r.id, r.state, r.missing, r.note, r.empenho_id, r.ledger_amount, r.partner, r.window_from, now)
                for r in part
            ],
        )

    count = total = 0
    for part in _chunks(changes):
        seqs = await conn.fetch(
            INSERT_HISTORY,
            now,
            by,
            [c.after.id for c in part],
            [c.after.state for c in part],
            [c.after.note for c in part],
        )
        seq_of = {row["record"]: row["seq"] for row in seqs}
        files = [c for c in part if c.after.origin == "FILE" and c.after.type in RECONCILED_TYPES]
        nets = {row["record"]: row["net"] for row in await conn.fetch(NETS, [c.after.id for c in files])}
        reversed_ = [c.after.empenho_id for c in files if c.after.type == SALE and c.after.state == DIVERGENT]
        kept = {row["id"]: row["returned"] for row in await conn.fetch(RETURNED_BEFORE_REVERSAL, reversed_)}
        returned = [c.after.return_id for c in files if c.after.type == RETURN and c.after.state == RECONCILED]
        pool = {row["id"] for row in await conn.fetch(POOL_RETURNS, returned)}
        moves = []
        for c in files:
            delta = _due(c.after, kept, pool) - nets.get(c.after.id, 0)
            if delta and c.after.type == RETURN:
                kind = "RETURN" if delta < 0 else "RETURN_UNDONE"
                moves.append((seq_of[c.after.id], c.after, kind, delta, c.after.empenho_id or c.before.empenho_id))
            elif delta:
                kind = "RECONCILED" if delta > 0 else c.debit_kind
                empenho = c.after.empenho_id or c.before.empenho_id
                moves.append((seq_of[c.after.id], c.after, kind, delta, empenho))
        if moves:
            await conn.execute(
                INSERT_MOVEMENTS,
                now,
                by,
                [m[0] for m in moves],
                [m[1].id for m in moves],
                [m[1].convenio for m in moves],
                [m[1].participant for m in moves],
                [m[2] for m in moves],
                [m[3] for m in moves],
                [m[4] for m in moves],
                [m[1].business_date for m in moves],
                [m[1].return_id for m in moves],
            )
            count += len(moves)
            total += sum(m[3] for m in moves)
    return count, total


def _due(rec: Record, kept: dict[str, int], pool: set[str]) -> int:
    """What a file line's record adds to its convênio's receivable, in sum of its movements.

    A reconciled sale line its amount; a line of a sale the ledger reversed what the sale's
    returns gave back before the reversal (the reversal gave back only the rest: those returns
    are lines of their own); a reconciled return line given back to the pool its (negative)
    amount, one refunded as a DEVOLUCAO credit nothing (the convênio still pays for the sale);
    anything else nothing."""
    if rec.type == RETURN:
        return rec.amount if rec.state == RECONCILED and rec.return_id in pool else 0
    if rec.state == RECONCILED:
        return rec.amount
    if rec.state == DIVERGENT and rec.ledger_amount == 0 and rec.empenho_id in kept:
        return kept[rec.empenho_id]
    return 0


# --- import ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Imported:
    file_id: int
    name: str
    sha256: str
    already: bool  # this very file had been imported before: nothing changed
    imported_at: datetime.datetime
    imported_by: str
    lines: int
    sales: int
    informative: int
    sales_amount: int
    returns: int = 0
    returns_amount: int = 0  # centavos given back (the return lines' amounts, negated)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file_id,
            "name": self.name,
            "sha256": self.sha256,
            "already_imported": self.already,
            "imported_at": self.imported_at.isoformat(),
            "imported_by": self.imported_by,
            "lines": self.lines,
            "sales": self.sales,
            "informative": self.informative,
            "sales_amount": self.sales_amount,
            "returns": self.returns,
            "returns_amount": self.returns_amount,
        }


FILE_BY_SHA = """SELECT id, name, sha256, imported_at, imported_by, lines, sales, informative, sales_amount, returns,
       returns_amount
FROM closing_files WHERE sha256 = $1"""
INSERT_FILE = """
INSERT INTO closing_files (name, sha256, imported_at, imported_by, lines, sales, informative, sales_amount, returns,
                           returns_amount)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING id, name, sha256, imported_at, imported_by, lines, sales, informative, sales_amount, returns,
          returns_amount"""


def _imported(row: asyncpg.Record, already: bool) -> Imported:
    return Imported(
        row["id"],
        row["name"],
        row["sha256"],
        already,
        row["imported_at"],
        row["imported_by"],
        row["lines"],
        row["sales"],
        row["informative"],
        row["sales_amount"],
        row["returns"],
        row["returns_amount"],
    )


async def import_file(
    conn: asyncpg.Connection,
    name: str,
    data: bytes,
    by: str,
    now: datetime.datetime,
    progress: Progress | None = None,
) -> Imported:
    """Store a closing file's lines as records (SALE and RETURN lines NOT_RECONCILED until a
    run, the others INFORMATIVE). The same file again changes nothing. BadFile: nothing stored."""
    lines = parse(data)
    digest = hashlib.sha256(data).hexdigest()
    sales = [line for line in lines if line.type == SALE]
    returns = [line for line in lines if line.type == RETURN]
    async with conn.transaction():
        await locks.for_transaction(conn, Lock.RECONCILE)  # imports, runs and undos one at a time
        known = await conn.fetchrow(FILE_BY_SHA, digest)
        if known is not None:
            return _imported(known, already=True)
        row = await conn.fetchrow(
            INSERT_FILE,
            name,
            digest,
            now,
            by,
            len(lines),
            len(sales),
            len(lines) - len(sales) - len(returns),
            sum(line.amount for line in sales),
            len(returns),
            -sum(line.amount for line in returns),
        )
        records = [_from_line(row["id"], name, line) for line in lines]
        tick = ticker(progress, "importing", len(records))
        for part in _chunks(records):
            await _insert(conn, part, by, now)
            tick(len(part))
    return _imported(row, already=False)


def _from_line(file_id: int, name: str, line: Line) -> Record:
    sale = line.type in RECONCILED_TYPES
    note = (
        f"imported from {name} line {line.line}"
        if sale
        else f"informative line ({line.type}) of {name} line {line.line}: listed, never reconciled"
    )
    return Record(
        id=0,
        origin="FILE",
        file_id=file_id,
        file_name=name,
        line=line.line,
        type=line.type,
        store=line.store,
        terminal=line.terminal,
        business_date=line.date,
        coupon=line.coupon,
        convenio=line.convenio,
        participant=line.participant,
        amount=line.amount,
        empenho_id=None,
        ledger_amount=None,
        state=NOT_RECONCILED if sale else INFORMATIVE,
        missing=None,
        note=note,
        partner=None,
        window_from=line.date,
        last_run_on=None,
        updated_at=None,
        return_id=line.return_id or None,
    )


# --- the run ---------------------------------------------------------------------------------
@dataclass
class RunReport:
    date: datetime.date
    window: int
    by: str
    file_records: int = 0  # file lines looked at
    ledger_sales: int = 0  # the ledger's sales of the window's days looked at
    ledger_returns: int = 0  # the ledger's returns of the window's days looked at
    changed: Counter[str] = field(default_factory=Counter)  # records moved into each state
    ledger_side_created: int = 0
    movements: int = 0
    receivable: int = 0  # centavos the receivable moved by, in sum
    window_states: dict[str, int] = field(default_factory=dict)  # records of the window's days, after the run
    changed_ids: list[int] = field(default_factory=list, repr=False)  # records this run changed

    @property
    def oldest(self) -> datetime.date:
        return self.date - datetime.timedelta(days=self.window)

    def as_dict(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(),
            "window": self.window,
            "window_start": self.oldest.isoformat(),
            "by": self.by,
            "file_records_tried": self.file_records,
            "ledger_sales_seen": self.ledger_sales,
            "ledger_returns_seen": self.ledger_returns,
            "changed": {state: self.changed.get(state, 0) for state in STATES if state != INFORMATIVE},
            "ledger_side_created": self.ledger_side_created,
            "receivable_movements": self.movements,
            "receivable_amount": self.receivable,
            "window_states": {state: self.window_states.get(state, 0) for state in STATES},
        }


# sales the ledger reversed, in the window's days, after a file line was reconciled with them
RECONCILED_THEN_REVERSED = (
    RECORDS
    + """
JOIN empenhos e ON e.id = r.empenho_id
WHERE r.origin = 'FILE' AND r.type = 'SALE' AND r.state = 'RECONCILED' AND e.status = 'REVERSED'
  AND e.ended_at >= $1 AND e.ended_at < $2
ORDER BY r.id"""
)
EXPIRED = RECORDS + " WHERE r.state = 'NOT_RECONCILED' AND r.window_from < $1 ORDER BY r.id"
OPEN_FILE = (
    RECORDS
    + """
WHERE r.origin = 'FILE' AND r.type = $3 AND r.state IN ('NOT_RECONCILED', 'DIVERGENT')
  AND r.window_from >= $1 AND r.business_date <= $2
ORDER BY r.id"""
)
OPEN_LEDGER = (
    RECORDS
    + """
WHERE r.origin = 'LEDGER' AND r.type = $3 AND r.state <> 'FAILED' AND r.window_from >= $1 AND r.business_date <= $2
ORDER BY r.id"""
)
LEDGER_SIDE_OF = (
    RECORDS + " WHERE r.origin = 'LEDGER' AND r.type = 'SALE' AND r.empenho_id = ANY($1::text[]) ORDER BY r.id"
)
RETURN_LEDGER_SIDE_OF = (
    RECORDS + " WHERE r.origin = 'LEDGER' AND r.type = 'RETURN' AND r.return_id = ANY($1::text[]) ORDER BY r.id"
)
PARTNERED = RECORDS + " WHERE r.origin = 'LEDGER' AND r.partner = ANY($1::bigint[]) ORDER BY r.id"
CLAIMS = (
    RECORDS
    + """
WHERE r.origin = 'FILE' AND r.type = 'SALE' AND r.state IN ('RECONCILED', 'DIVERGENT')
  AND r.empenho_id = ANY($1::text[])"""
)
RETURN_CLAIMS = (
    RECORDS
    + """
WHERE r.origin = 'FILE' AND r.type = 'RETURN' AND r.state IN ('RECONCILED', 'DIVERGENT')
  AND r.return_id = ANY($1::text[])"""
)
WINDOW_STATES = """SELECT state, count(*)::int AS n FROM reconciliation_records
WHERE business_date >= $1 AND business_date <= $2 GROUP BY state"""


# --- what a run matches lines against: the ledger's sales, and its returns ------------------------
async def _sales_of_day(conn: asyncpg.Connection, day: datetime.date) -> list[Item]:
    return [_sale(row) for row in await conn.fetch(SALES_BETWEEN, *any_zone_bounds(day), day)]


async def _sales_by_id(conn: asyncpg.Connection, ids: list[str]) -> list[Item]:
    return [_sale(row) for row in await conn.fetch(SALES_BY_ID, ids)]


async def _sale_claims(conn: asyncpg.Connection, ids: list[str]) -> list[Record]:
    return [_record(row) for row in await conn.fetch(CLAIMS, ids)]


async def _sales_ledger_side(conn: asyncpg.Connection, ids: list[str]) -> list[Record]:
    return [_record(row) for row in await conn.fetch(LEDGER_SIDE_OF, ids)]


async def _returns_of_day(conn: asyncpg.Connection, day: datetime.date) -> list[Item]:
    return [_return(row) for row in await conn.fetch(RETURNS_BETWEEN, *any_zone_bounds(day), day)]


async def _returns_by_id(conn: asyncpg.Connection, ids: list[str]) -> list[Item]:
    return [_return(row) for row in await conn.fetch(RETURNS_BY_ID, ids)]


async def _return_claims(conn: asyncpg.Connection, ids: list[str]) -> list[Record]:
    return [_record(row) for row in await conn.fetch(RETURN_CLAIMS, ids)]


async def _returns_ledger_side(conn: asyncpg.Connection, ids: list[str]) -> list[Record]:
    return [_record(row) for row in await conn.fetch(RETURN_LEDGER_SIDE_OF, ids)]


@dataclass(frozen=True)
class Kind:
    """A type of line and what the run matches it against (the ledger's sales, or its returns)."""

    type: str  # of the lines and records
    noun: str
    no_item: str  # a line's note when the ledger has nothing for it
    no_file_yet: str  # a ledger-side record's note while no line reported its item
    of_day: Callable[[asyncpg.Connection, datetime.date], Awaitable[list[Item]]]
    by_id: Callable[[asyncpg.Connection, list[str]], Awaitable[list[Item]]]
    claims: Callable[[asyncpg.Connection, list[str]], Awaitable[list[Record]]]  # lines holding the items
    ledger_side: Callable[[asyncpg.Connection, list[str]], Awaitable[list[Record]]]  # the items' ledger-side records


SALES = Kind(SALE, "sale", NO_SALE, NO_FILE_YET, _sales_of_day, _sales_by_id, _sale_claims, _sales_ledger_side)
RETURNS = Kind(
    RETURN,
    "return",
    NO_RETURN,
    NO_RETURN_FILE_YET,
    _returns_of_day,
    _returns_by_id,
    _return_claims,
    _returns_ledger_side,
)


async def run(
    conn: asyncpg.Connection,
    on: datetime.date,
    window: int = DEFAULT_WINDOW,
    by: str = "system",
    now: datetime.datetime | None = None,
    progress: Progress | None = None,
) -> RunReport:
    """Reconcile as of business day `on`, looking back `window` days; idempotent."""
    if window < 0:
        raise ReconciliationError("the window is a number of days, 0 or more")
    now = now or datetime.datetime.now(datetime.UTC)
    report = RunReport(on, window, by)
    oldest = report.oldest
    async with conn.transaction():
        await locks.for_transaction(conn, Lock.RECONCILE)  # imports, runs and undos one at a time
        await _reversed_after_reconciled(conn, report, now)
        await _expire(conn, report, now)

        for kind in (SALES, RETURNS):
            await _reconcile(conn, kind, report, now, progress)

        rows = await conn.fetch(WINDOW_STATES, oldest, on)
        report.window_states = {row["state"]: row["n"] for row in rows}
    return report


async def _reconcile(
    conn: asyncpg.Connection, kind: Kind, report: RunReport, now: datetime.datetime, progress: Progress | None
) -> None:
    """The open lines of one type against the ledger's items of their days, then the ledger's
    side: each item of the window a line reported, or not."""
    on, oldest = report.date, report.oldest
    open_file = [_record(r) for r in await conn.fetch(OPEN_FILE, oldest, on, kind.type)]
    open_ledger = [_record(r) for r in await conn.fetch(OPEN_LEDGER, oldest, on, kind.type)]
    days = {oldest + datetime.timedelta(days=i) for i in range(report.window + 1)}
    days |= {r.business_date for r in open_file + open_ledger}
    items: dict[str, Item] = {}
    for day in sorted(days):
        for item in await kind.of_day(conn, day):
            items[item.id] = item
    in_window = [s for s in items.values() if oldest <= s.day <= on]
    report.file_records += len(open_file)
    if kind.type == SALE:
        report.ledger_sales = len(in_window)
    else:
        report.ledger_returns = len(in_window)
    label = f"reconciling {on}" + ("" if kind.type == SALE else f": {kind.noun}s")
    step = ticker(progress, label, len(open_file) + len(in_window) + len(open_ledger))
    await _both_sides(conn, kind, report, now, open_file, open_ledger, items, in_window, step)


async def _both_sides(
    conn: asyncpg.Connection,
    kind: Kind,
    report: RunReport,
    now: datetime.datetime,
    open_file: list[Record],
    open_ledger: list[Record],
    items: dict[str, Item],
    in_window: list[Item],
    step: Tick,
) -> None:
    """The open lines against the items (sales or returns) of their days, then the ledger's side:
    the ledger-side records of `open_ledger` and of the lines changed follow them, and each item
    of `in_window` no line holds and no record has yet gets its ledger-side record."""
    on, by = report.date, report.by
    # the file's side: each open line against the items of its day
    claims = {r.ref: r for r in await kind.claims(conn, list(items))}
    matched = _match(open_file, items.values(), claims, kind)
    if kind.type == RETURN:
        # a line naming a return the ledger has at another store, terminal, day or sale: say so
        unknown = [r.return_id for r in matched.values() if r.note == kind.no_item and r.return_id not in items]
        named = {**{x.id: x for x in await kind.by_id(conn, unknown)}, **items}
        for rec_id, after in matched.items():
            if after.note == kind.no_item and after.return_id in named:
                matched[rec_id] = replace(after, note=_elsewhere_note(named[after.return_id]))
    file_changes = [Change(before, matched[before.id]) for before in open_file if _changed(before, matched[before.id])]
    await _write(conn, report, file_changes, by, now)
    step(len(open_file))
    await conn.execute(TOUCH, on, [r.id for r in open_file])

    # the ledger's side: each item of the window a line reported, or not
    evaluated = {r.ref: r for r in open_ledger}
    for r in map(_record, await conn.fetch(PARTNERED, report.changed_ids)):
        if r.type == kind.type:
            evaluated.setdefault(r.ref, r)
    existing = {r.ref for r in await kind.ledger_side(conn, [s.id for s in in_window])}
    lacking = [e for e in evaluated if e not in items]
    for item in await kind.by_id(conn, lacking):
        items[item.id] = item
    interest = sorted(set(evaluated) | {s.id for s in in_window})
    claims = {r.ref: r for r in await kind.claims(conn, interest)}

    new = [
        _ledger_side(s, kind)
        for s in sorted(in_window, key=lambda s: (s.committed_at, s.id))
        if s.status == "COMMITTED" and s.id not in existing and s.id not in claims
    ]
    if new:
        ids = await _insert(conn, new, by, now)
        report.ledger_side_created += len(ids)
        report.changed[NOT_RECONCILED] += len(ids)
        await conn.execute(TOUCH, on, ids)
    step(len(in_window))
    ledger_changes = []
    for before in evaluated.values():
        item = items.get(before.ref or "")
        if item is None:
            continue  # the empenho left the projection: nothing to compare with
        after = _mirror(before, item, claims.get(item.id), kind)
        if _changed(before, after):
            ledger_changes.append(Change(before, after))
    await _write(conn, report, ledger_changes, by, now)
    await conn.execute(TOUCH, on, [r.id for r in open_ledger])
    step(len(evaluated))


async def _write(
    conn: asyncpg.Connection, report: RunReport, changes: Sequence[Change], by: str, now: datetime.datetime
) -> None:
    moves, amount = await _apply(conn, changes, by, now)
    report.movements += moves
    report.receivable += amount
    for c in changes:
        report.changed[c.after.state] += 1
        report.changed_ids.append(c.after.id)


async def _reversed_after_reconciled(conn: asyncpg.Connection, report: RunReport, now: datetime.datetime) -> None:
    start, _ = any_zone_bounds(report.oldest)
    _, end = any_zone_bounds(report.date)
    changes = []
    for before in map(_record, await conn.fetch(RECONCILED_THEN_REVERSED, start, end)):
        rows = await conn.fetch(SALES_BY_ID, [before.empenho_id])
        sale = _sale(rows[0])
        after = replace(before, state=DIVERGENT, ledger_amount=0, note=_reversed_note(sale))
        changes.append(Change(before, after, debit_kind="REVERSED"))
    await _write(conn, report, changes, report.by, now)


async def _expire(conn: asyncpg.Connection, report: RunReport, now: datetime.datetime) -> None:
    changes = []
    for before in map(_record, await conn.fetch(EXPIRED, report.oldest)):
        look = f"within the {report.window}-day look-back from {before.window_from.isoformat()}"
        if before.origin == "FILE":
            after = replace(before, state=FAILED, missing="LEDGER", note=f"not found in the ledger {look}")
        else:
            after = replace(
                before, state=FAILED, missing="FILE", partner=None, note=f"no closing file reported it {look}"
            )
        changes.append(Change(before, after))
    await _write(conn, report, changes, report.by, now)


def _match(
    open_file: Sequence[Record], items: Iterable[Item], claims: dict[str, Record], kind: Kind
) -> dict[int, Record]:
    """Each open line's new version: an item (sale or return) of the same key for the same amount
    first, then one for another amount (or a reversed sale); a line keeps the item it had when it
    can. Amounts are compared as the file writes them (a return's negative)."""
    by_key: dict[tuple, list[Item]] = defaultdict(list)
    for s in sorted(items, key=lambda s: (s.committed_at, s.id)):
        by_key[s.key].append(s)
    open_ids = {r.id for r in open_file}
    held = {e: r.id for e, r in claims.items() if r.id not in open_ids}  # claims this run does not revisit
    taken: dict[str, int] = {}
    result: dict[int, Record] = {}
    noun = kind.noun

    def free(s: Item) -> bool:
        return s.id not in held and s.id not in taken

    for rec in open_file:
        for s in by_key.get(rec.key, ()):
            if s.status == "COMMITTED" and s.amount == rec.amount and free(s):
                taken[s.id] = rec.id
                note = f"the ledger's {noun} {s.id} matches ({brl(abs(s.amount))})"
                result[rec.id] = replace(
                    rec, state=RECONCILED, empenho_id=s.sale_id, ledger_amount=s.amount, missing=None, note=note
                )
                break
    rest = sorted((r for r in open_file if r.id not in result), key=lambda r: (r.empenho_id is None, r.id))
    for rec in rest:
        candidates = [s for s in by_key.get(rec.key, ()) if free(s)]
        candidates.sort(key=lambda s: (s.id != rec.ref, s.status != "COMMITTED"))
        if candidates:
            s = candidates[0]
            taken[s.id] = rec.id
            if s.status == "COMMITTED":
                note = (
                    f"the ledger's {noun} {s.id} is {brl(abs(s.amount))}, the file says {brl(abs(rec.amount))} "
                    f"(they differ by {brl(abs(s.amount - rec.amount))})"
                )
                live = s.amount
            else:
                note, live = _reversed_note(s), 0
            result[rec.id] = replace(
                rec, state=DIVERGENT, empenho_id=s.sale_id, ledger_amount=live, missing=None, note=note
            )
            continue
        others = by_key.get(rec.key, ())
        if others:
            s = others[0]
            holder = held.get(s.id) or taken.get(s.id)
            note = f"the ledger's {noun} {s.id} is matched by record {holder}: the {noun} is reported twice"
        else:
            note = kind.no_item
        result[rec.id] = replace(
            rec, state=NOT_RECONCILED, empenho_id=None, ledger_amount=None, missing="LEDGER", note=note
        )
    return result


def _ledger_side(item: Item, kind: Kind) -> Record:
    """A new ledger-side record for a committed sale (or a return) no line holds."""
    return Record(
        id=0,
        origin="LEDGER",
        file_id=None,
        file_name=None,
        line=None,
        type=kind.type,
        store=item.store,
        terminal=item.terminal,
        business_date=item.day,
        coupon=item.coupon,
        convenio=item.convenio,
        participant=item.participant,
        amount=item.amount,
        empenho_id=item.sale_id,
        ledger_amount=item.amount,
        state=NOT_RECONCILED,
        missing="FILE",
        note=kind.no_file_yet,
        partner=None,
        window_from=item.day,
        last_run_on=None,
        updated_at=None,
        return_id=item.id if kind.type == RETURN else None,
    )


def _mirror(rec: Record, item: Item, claim: Record | None, kind: Kind) -> Record:
    """A ledger-side record follows the line that reported its sale (or return), if any."""
    live = item.amount if item.status == "COMMITTED" else 0
    if claim is not None:
        where = f"{claim.file_name} line {claim.line}"
        note = f"reported by {where} (record {claim.id}), {claim.state}"
        return replace(rec, state=claim.state, partner=claim.id, missing=None, ledger_amount=live, note=note)
    if isinstance(item, Sale) and item.status == "REVERSED":
        note = _reversed_note(item) + "; no file needs to report it"
        return replace(rec, state=RECONCILED, partner=None, missing=None, ledger_amount=0, note=note)
    return replace(rec, state=NOT_RECONCILED, partner=None, missing="FILE", ledger_amount=live, note=kind.no_file_yet)


# --- undo ------------------------------------------------------------------------------------
RECORD_BY_ID = RECORDS + " WHERE r.id = $1"
RECORD_FOR_UPDATE = RECORDS + " WHERE r.id = $1 FOR UPDATE OF r"


async def undo(
    conn: asyncpg.Connection, record_id: int, by: str, now: datetime.datetime, note: str = ""
) -> list[Record]:
    """Excluir Conciliação: a RECONCILED or DIVERGENT record (with the other side's
    record of the same sale or return) goes back to NOT_RECONCILED, the receivable gets the counter-
    movement, and the next run tries it again, its window counted from today."""
    if len(note) > MAX_NOTE:
        raise ReconciliationError(f"the note is longer than {MAX_NOTE} characters")
    async with conn.transaction():
        await locks.for_transaction(conn, Lock.RECONCILE)  # imports, runs and undos one at a time
        row = await conn.fetchrow(RECORD_FOR_UPDATE, record_id)
        if row is None:
            raise UnknownRecord(f"no reconciliation record {record_id}")
        rec = _record(row)
        if rec.state == INFORMATIVE:
            raise NotUndoable(f"record {rec.id} is INFORMATIVE: it is never reconciled, so nothing to undo")
        if rec.state not in (RECONCILED, DIVERGENT):
            raise NotUndoable(f"record {rec.id} is {rec.state}: only a RECONCILED or DIVERGENT record can be undone")
        target = rec
        if rec.origin == "LEDGER" and rec.partner is not None:
            target = _record(await conn.fetchrow(RECORD_FOR_UPDATE, rec.partner))
        day = local_today(now)
        text = "reconciliation undone" + (f": {note}" if note else "")
        after = replace(target, state=NOT_RECONCILED, missing=None, note=text, window_from=day)
        if target.origin == "FILE":
            after = replace(after, empenho_id=None, ledger_amount=None)
        changes = [Change(target, after)]
        if target.origin == "FILE":
            for other in map(_record, await conn.fetch(PARTNERED, [target.id])):
                what = "return" if target.type == RETURN else "sale"
                undone = f"record {target.id}, which reported this {what}, had its reconciliation undone"
                mirror = replace(other, state=NOT_RECONCILED, missing=None, partner=None, note=undone, window_from=day)
                changes.append(Change(other, mirror))
        await _apply(conn, changes, by, now)
    return [c.after for c in changes]


# --- reading ---------------------------------------------------------------------------------
LIST = (
    RECORDS
    + """
WHERE ($1::text IS NULL OR r.convenio = $1) AND ($2::text IS NULL OR r.state = $2)
  AND ($3::date IS NULL OR r.business_date = $3) AND ($4::text IS NULL OR r.store = $4)
  AND ($5::text IS NULL OR r.terminal = $5)
ORDER BY r.business_date, r.store, r.terminal, r.id
LIMIT $6"""
)
COUNT = """SELECT count(*) FROM reconciliation_records r
WHERE ($1::text IS NULL OR r.convenio = $1) AND ($2::text IS NULL OR r.state = $2)
  AND ($3::date IS NULL OR r.business_date = $3) AND ($4::text IS NULL OR r.store = $4)
  AND ($5::text IS NULL OR r.terminal = $5)"""
HISTORY = "SELECT seq, at, by, state, note FROM reconciliation_history WHERE record = $1 ORDER BY seq"


async def records(
    conn: asyncpg.Connection,
    convenio: str | None = None,
    state: str | None = None,
    on: datetime.date | None = None,
    store: str | None = None,
    terminal: str | None = None,
    limit: int | None = None,
) -> tuple[list[Record], int]:
    """The records that pass every filter given (by day, store, terminal, id), at most
    `limit`, and how many pass in all."""
    if state is not None and state not in STATES:
        raise ReconciliationError(f"unknown state {state!r}: one of {', '.join(STATES)}")
    found = [_record(r) for r in await conn.fetch(LIST, convenio, state, on, store, terminal, limit)]
    total = await conn.fetchval(COUNT, convenio, state, on, store, terminal)
    return found, total


async def record(conn: asyncpg.Connection, record_id: int) -> Record:
    row = await conn.fetchrow(RECORD_BY_ID, record_id)
    if row is None:
        raise UnknownRecord(f"no reconciliation record {record_id}")
    return _record(row)


async def history(conn: asyncpg.Connection, record_id: int) -> tuple[Record, list[dict[str, Any]]]:
    """A record and its history, oldest first (when, who, state, note)."""
    rec = await record(conn, record_id)
    rows = await conn.fetch(HISTORY, record_id)
    return rec, [
        {"seq": r["seq"], "at": r["at"].isoformat(), "by": r["by"], "state": r["state"], "note": r["note"]}
        for r in rows
    ]


KNOWN_CONVENIO = """SELECT EXISTS (SELECT 1 FROM convenios WHERE code = $1)
    OR EXISTS (SELECT 1 FROM receivable_movements WHERE convenio = $1)"""
MOVEMENTS = """
SELECT m.seq, m.record, m.kind, m.amount, (sum(m.amount) OVER (ORDER BY m.seq))::bigint AS balance,
       m.participant, m.empenho_id, m.return_id, m.business_date, m.at, m.by, r.store, r.terminal, r.coupon,
       r.file_id, r.line
FROM receivable_movements m JOIN reconciliation_records r ON r.id = m.record
WHERE m.convenio = $1
ORDER BY m.seq"""
BALANCES = """SELECT convenio, count(*)::int AS movements, sum(amount)::bigint AS balance
FROM receivable_movements GROUP BY convenio ORDER BY convenio"""


async def receivables(conn: asyncpg.Connection, convenio: str) -> dict[str, Any]:
    """The convênio's financial account: every movement, oldest first, with the balance after it."""
    if not await conn.fetchval(KNOWN_CONVENIO, convenio):
        raise UnknownConvenio(f"no convênio {convenio}")
    movements = [
        {
            "seq": r["seq"],
            "record": r["record"],
            "kind": r["kind"],
            "amount": r["amount"],
            "balance": r["balance"],
            "participant": r["participant"],
            "empenho": r["empenho_id"],
            "return": r["return_id"],
            "date": r["business_date"].isoformat(),
            "store": r["store"],
            "terminal": r["terminal"],
            "coupon": r["coupon"],
            "file": r["file_id"],
            "line": r["line"],
            "at": r["at"].isoformat(),
            "by": r["by"],
        }
        for r in await conn.fetch(MOVEMENTS, convenio)
    ]
    return {"convenio": convenio, "balance": movements[-1]["balance"] if movements else 0, "movements": movements}


async def receivable_balances(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Each convênio's receivable balance and number of movements."""
    return [dict(r) for r in await conn.fetch(BALANCES)]


# --- a paged listing, for the HTTP API ------------------------------------------------------------
PAGE = (
    RECORDS
    + """
WHERE ($1::text IS NULL OR r.convenio = $1) AND ($2::text IS NULL OR r.state = $2)
  AND ($3::date IS NULL OR r.business_date >= $3) AND ($4::date IS NULL OR r.business_date <= $4)
  AND ($5::text IS NULL OR r.store = $5) AND ($6::text IS NULL OR r.terminal = $6)
  AND ($7::bigint IS NULL OR r.id > $7)
ORDER BY r.id
LIMIT $8"""
)


async def page(
    conn: asyncpg.Connection,
    *,
    convenio: str | None = None,
    state: str | None = None,
    start: datetime.date | None = None,
    end: datetime.date | None = None,
    store: str | None = None,
    terminal: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> tuple[list[Record], int | None]:
    """The records that pass every filter given (business days from `start` to `end`, both
    included), in id order after `after`, at most `limit`; and the id to continue after, if more."""
    if state is not None and state not in STATES:
        raise ReconciliationError(f"unknown state {state!r}: one of {', '.join(STATES)}")
    rows = await conn.fetch(PAGE, convenio, state, start, end, store, terminal, after, limit + 1)
    found = [_record(r) for r in rows[:limit]]
    return found, (found[-1].id if len(rows) > limit else None)


# --- a run of selected records ("Conciliar" on 1 or N records) --------------------------------------
SELECTED = RECORDS + " WHERE r.id = ANY($1::bigint[]) ORDER BY r.id"
SELECTED_FOR_UPDATE = SELECTED + " FOR UPDATE OF r"
MAX_SELECTED = 1000
TRIED = (NOT_RECONCILED, DIVERGENT)


async def run_selected(
    conn: asyncpg.Connection, record_ids: Sequence[int], by: str = "system", now: datetime.datetime | None = None
) -> tuple[RunReport, list[Record], list[Record]]:
    """Reconcile the selected records only: each NOT_RECONCILED or DIVERGENT line against the
    ledger's items (sales or returns) of its day, as a run would, and the ledger-side records of
    those items follow it; a selected ledger-side record follows whatever line holds its item.
    Nothing outside the selection is tried, no ledger-side record is made and none becomes FAILED:
    the runs of the look-back window do that. Returns the report, the selected records after the
    run, and those that were in no state to try (RECONCILED, INFORMATIVE, FAILED), left as they are.
    Running it again changes nothing."""
    if not record_ids:
        raise ReconciliationError("select at least one record")
    if len(set(record_ids)) > MAX_SELECTED:
        raise ReconciliationError(f"select at most {MAX_SELECTED} records at a time")
    now = now or datetime.datetime.now(datetime.UTC)
    ids = sorted(set(record_ids))
    report = RunReport(local_today(now), 0, by)
    async with conn.transaction():
        await locks.for_transaction(conn, Lock.RECONCILE)  # imports, runs and undos one at a time
        chosen = [_record(r) for r in await conn.fetch(SELECTED_FOR_UPDATE, ids)]
        unknown = sorted(set(ids) - {r.id for r in chosen})
        if unknown:
            raise UnknownRecord(f"no reconciliation record {', '.join(map(str, unknown))}")
        tried = [r for r in chosen if r.state in TRIED]
        for kind in (SALES, RETURNS):
            open_file = [r for r in tried if r.origin == "FILE" and r.type == kind.type]
            mine = [r for r in tried if r.origin == "LEDGER" and r.type == kind.type]
            if not open_file and not mine:
                continue
            items: dict[str, Item] = {}
            for day in sorted({r.business_date for r in open_file + mine}):
                for item in await kind.of_day(conn, day):
                    items[item.id] = item
            keys = {r.key for r in open_file}
            near = [s.id for s in items.values() if s.key in keys]  # the items the lines may take
            known = {r.id for r in mine}
            open_ledger = mine + [
                r for r in await kind.ledger_side(conn, near) if r.id not in known and r.state != FAILED
            ]
            report.file_records += len(open_file)
            await _both_sides(conn, kind, report, now, open_file, open_ledger, items, [], ticker(None, "", 0))
        after = [_record(r) for r in await conn.fetch(SELECTED, ids)]
    report.window_states = dict(Counter(r.state for r in after))
    return report, after, [r for r in chosen if r.state not in TRIED]


# --- closings posted by a terminal or the store's system ----------------------------------------------
@dataclass(frozen=True)
class PostedLine:
    """A line of a posted closing: a closing file's line without its store, terminal and day."""

    coupon: str
    convenio: str
    participant: str
    amount: int
    type: str = SALE
    return_id: str = ""


POSTED_BY_NAME = "SELECT sha256 FROM closing_files WHERE name = $1"


def posted_name(store: str, terminal: str, day: datetime.date) -> str:
    """The file name a posted closing is kept under: with "/" in it, which no uploaded file's
    name has, so that only the post of the same store, terminal and day is known by it."""
    return f"closing {store}/{terminal}/{day.isoformat()}"


def posted_csv(store: str, terminal: str, day: datetime.date, lines: Sequence[PostedLine]) -> bytes:
    """The closing file a post stands for, in its one canonical form: the same post gives the
    same bytes, so the same file (its SHA-256) and nothing imported twice."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS + OPTIONAL_COLUMNS)
    for x in lines:
        row = (store, terminal, day.isoformat(), x.coupon, x.convenio, x.participant, x.amount, x.type, x.return_id)
        writer.writerow(row)
    return out.getvalue().encode()


async def post_closing(
    conn: asyncpg.Connection,
    store: str,
    terminal: str,
    day: datetime.date,
    lines: Sequence[PostedLine],
    by: str,
    now: datetime.datetime,
) -> Imported:
    """Import a terminal's closing of a day as a closing file (origin FILE, a file id of its own):
    runs reconcile it like any imported file. Posting the same lines again changes nothing and
    answers the same file; other lines for the same store, terminal and day are ClosingConflict
    (a correction is a file the back office imports). BadFile names the bad lines (line 2 is the
    first posted line, as in the file it stands for)."""
    name = posted_name(store, terminal, day)
    data = posted_csv(store, terminal, day, lines)
    parse(data)  # a bad post is refused as such, whatever was posted before
    digest = hashlib.sha256(data).hexdigest()
    async with conn.transaction():
        await locks.for_transaction(conn, Lock.RECONCILE)  # the check and the import, one at a time
        if any(row["sha256"] != digest for row in await conn.fetch(POSTED_BY_NAME, name)):
            raise ClosingConflict(
                f"the closing of {store} {terminal} on {day.isoformat()} was posted before with other lines; "
                "a correction is imported as a closing file"
            )
        return await import_file(conn, name, data, by, now)
