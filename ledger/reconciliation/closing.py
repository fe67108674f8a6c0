"""The cash-closing report (fechamento de caixa): a business day's convênio sales per store and
terminal, with the totals per convênio and per participant kept separately ("no
fechamento de caixa, as informações referente ao convênio e participante serão salvas
separadamente"), and how far the terminal's closing file has been reconciled.

Read from the ledger's projection: a sale counts on the day it was committed, a reversal on the
day it was reversed (in America/Sao_Paulo), so a sale returned the next day shows in both days'
closings, each on its own side. Money is integer centavos.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from ledger.reconciliation.reconcile import STATES, day_bounds

SALES = """
SELECT store, terminal, convenio, participant, count(*)::int AS n, sum(committed_amount)::bigint AS amount
FROM empenhos
WHERE committed_at >= $1 AND committed_at < $2 AND status IN ('COMMITTED', 'REVERSED')
  AND ($3::text IS NULL OR store = $3) AND ($4::text IS NULL OR terminal = $4)
GROUP BY store, terminal, convenio, participant"""

REVERSALS = """
SELECT store, terminal, convenio, participant, count(*)::int AS n, sum(committed_amount)::bigint AS amount
FROM empenhos
WHERE status = 'REVERSED' AND ended_at >= $1 AND ended_at < $2
  AND ($3::text IS NULL OR store = $3) AND ($4::text IS NULL OR terminal = $4)
GROUP BY store, terminal, convenio, participant"""

# what the terminals' closing files reported for the day, by reconciliation state
RECONCILED = """
SELECT store, terminal, state, count(*)::int AS n, sum(amount)::bigint AS amount
FROM reconciliation_records
WHERE origin = 'FILE' AND type = 'SALE' AND business_date = $1
  AND ($2::text IS NULL OR store = $2) AND ($3::text IS NULL OR terminal = $3)
GROUP BY store, terminal, state"""


@dataclass
class Totals:
    sales: int = 0
    sales_amount: int = 0
    reversals: int = 0
    reversals_amount: int = 0

    @property
    def net_amount(self) -> int:
        return self.sales_amount - self.reversals_amount

    def add(self, other: Totals) -> None:
        self.sales += other.sales
        self.sales_amount += other.sales_amount
        self.reversals += other.reversals
        self.reversals_amount += other.reversals_amount

    def as_dict(self) -> dict[str, int]:
        return {
            "sales": self.sales,
            "sales_amount": self.sales_amount,
            "reversals": self.reversals,
            "reversals_amount": self.reversals_amount,
            "net_amount": self.net_amount,
        }


@dataclass
class TerminalClosing:
    store: str
    terminal: str
    totals: Totals = field(default_factory=Totals)
    convenios: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    participants: dict[tuple[str, str], Totals] = field(default_factory=lambda: defaultdict(Totals))
    # the day's closing-file lines of this terminal, per reconciliation state: (lines, amount)
    reconciliation: dict[str, tuple[int, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "terminal": self.terminal,
            "totals": self.totals.as_dict(),
            "convenios": [{"convenio": c, **t.as_dict()} for c, t in sorted(self.convenios.items())],
            "participants": [
                {"convenio": c, "participant": p, **t.as_dict()} for (c, p), t in sorted(self.participants.items())
            ],
            "reconciliation": {
                "file_lines": sum(n for n, _ in self.reconciliation.values()),
                "file_amount": sum(a for _, a in self.reconciliation.values()),
                "states": {s: self.reconciliation.get(s, (0, 0))[0] for s in STATES if s != "INFORMATIVE"},
            },
        }


@dataclass
class Closing:
    date: datetime.date
    store: str | None
    terminal: str | None
    terminals: list[TerminalClosing]

    @property
    def totals(self) -> Totals:
        total = Totals()
        for t in self.terminals:
            total.add(t.totals)
        return total

    def as_dict(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(),
            "store": self.store,
            "terminal": self.terminal,
            "totals": self.totals.as_dict(),
            "terminals": [t.as_dict() for t in self.terminals],
        }


async def cash_closing(
    conn: asyncpg.Connection, on: datetime.date, store: str | None = None, terminal: str | None = None
) -> Closing:
    """The closing of business day `on`, of every store and terminal or of those given."""
    start, end = day_bounds(on)
    by_terminal: dict[tuple[str, str], TerminalClosing] = {}

    def closing_of(row: asyncpg.Record) -> TerminalClosing:
        key = (row["store"], row["terminal"])
        if key not in by_terminal:
            by_terminal[key] = TerminalClosing(*key)
        return by_terminal[key]

    for row in await conn.fetch(SALES, start, end, store, terminal):
        t = closing_of(row)
        part = Totals(sales=row["n"], sales_amount=row["amount"])
        for totals in (t.totals, t.convenios[row["convenio"]], t.participants[(row["convenio"], row["participant"])]):
            totals.add(part)
    for row in await conn.fetch(REVERSALS, start, end, store, terminal):
        t = closing_of(row)
        part = Totals(reversals=row["n"], reversals_amount=row["amount"])
        for totals in (t.totals, t.convenios[row["convenio"]], t.participants[(row["convenio"], row["participant"])]):
            totals.add(part)
    for row in await conn.fetch(RECONCILED, on, store, terminal):
        closing_of(row).reconciliation[row["state"]] = (row["n"], row["amount"])
    return Closing(on, store, terminal, [by_terminal[k] for k in sorted(by_terminal)])
