"""The cash-closing report (fechamento de caixa): a business day's convênio sales per store and
terminal, the returns (devoluções) taken there apart from them, with the totals per convênio
and per participant kept separately ("no fechamento de caixa, as informações referente ao
convênio e participante serão salvas separadamente"), and how far the terminal's closing file
has been reconciled.

Read from the ledger's projection: a sale counts on the day it was committed, a reversal on the
day it was reversed, at the sale's store and terminal; a return counts where and when it was
taken (its own store, terminal and day, not the sale's). Days are each store's business days, in
the store's own time zone (America/Sao_Paulo for a store not registered), so a sale at 23:30 in
Manaus is that day's there; a sale reversed the next day shows in both days' closings, each on
its own side. The net is what
the convênio is charged: sales less reversals less the returns given back to its pool; a return
refunded as a DEVOLUCAO credit is shown but not taken off (the convênio still pays for the sale,
the customer holds a store credit). Money is integer centavos.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from gateway.platform.clock import any_zone_bounds
from ledger.reconciliation.reconcile import STATES

# The day of a row is its store's business day: the instant in the store's zone (a store not
# registered counts in America/Sao_Paulo). $1 and $2 bound the day in every Brazilian zone, so
# the index on the instant is used; $5 is the day itself.
SALES = """
SELECT e.store, e.terminal, e.convenio, e.participant, count(*)::int AS n, sum(e.committed_amount)::bigint AS amount
FROM empenhos e LEFT JOIN stores st ON st.code = e.store
WHERE e.committed_at >= $1 AND e.committed_at < $2 AND e.status IN ('COMMITTED', 'REVERSED')
  AND (e.committed_at AT TIME ZONE coalesce(st.time_zone, 'America/Sao_Paulo'))::date = $5
  AND ($3::text IS NULL OR e.store = $3) AND ($4::text IS NULL OR e.terminal = $4)
GROUP BY e.store, e.terminal, e.convenio, e.participant"""

# a reversal gives back what the sale's returns left of it
REVERSALS = """
SELECT e.store, e.terminal, e.convenio, e.participant, count(*)::int AS n,
       sum(e.committed_amount - e.returned)::bigint AS amount
FROM empenhos e LEFT JOIN stores st ON st.code = e.store
WHERE e.status = 'REVERSED' AND e.ended_at >= $1 AND e.ended_at < $2
  AND (e.ended_at AT TIME ZONE coalesce(st.time_zone, 'America/Sao_Paulo'))::date = $5
  AND ($3::text IS NULL OR e.store = $3) AND ($4::text IS NULL OR e.terminal = $4)
GROUP BY e.store, e.terminal, e.convenio, e.participant"""

# the returns taken on the day, at the store and terminal that took them (its zone's day)
RETURNS = """
SELECT r.store, r.terminal, e.convenio, e.participant, r.refund, count(*)::int AS n, sum(r.amount)::bigint AS amount
FROM empenho_returns r JOIN empenhos e ON e.id = r.empenho_id LEFT JOIN stores st ON st.code = r.store
WHERE r.at >= $1 AND r.at < $2
  AND (r.at AT TIME ZONE coalesce(st.time_zone, 'America/Sao_Paulo'))::date = $5
  AND ($3::text IS NULL OR r.store = $3) AND ($4::text IS NULL OR r.terminal = $4)
GROUP BY r.store, r.terminal, e.convenio, e.participant, r.refund"""

RETURN_LIST = """
SELECT r.id, r.at, r.store, r.terminal, r.amount, r.refund, r.credit_reference, r.reason, r.empenho_id, e.coupon,
       e.convenio, e.participant, e.store AS sale_store, e.terminal AS sale_terminal,
       (e.committed_at AT TIME ZONE coalesce(ss.time_zone, 'America/Sao_Paulo'))::date AS sale_day
FROM empenho_returns r JOIN empenhos e ON e.id = r.empenho_id
     LEFT JOIN stores st ON st.code = r.store LEFT JOIN stores ss ON ss.code = e.store
WHERE r.at >= $1 AND r.at < $2
  AND (r.at AT TIME ZONE coalesce(st.time_zone, 'America/Sao_Paulo'))::date = $5
  AND ($3::text IS NULL OR r.store = $3) AND ($4::text IS NULL OR r.terminal = $4)
ORDER BY r.at, r.id"""

# what the terminals' closing files reported for the day, by reconciliation state: the sale lines
RECONCILED = """
SELECT store, terminal, state, count(*)::int AS n, sum(amount)::bigint AS amount
FROM reconciliation_records
WHERE origin = 'FILE' AND type = 'SALE' AND business_date = $1
  AND ($2::text IS NULL OR store = $2) AND ($3::text IS NULL OR terminal = $3)
GROUP BY store, terminal, state"""

# ... and the return lines (their amounts negated: centavos given back)
RETURNS_RECONCILED = """
SELECT store, terminal, state, count(*)::int AS n, (-sum(amount))::bigint AS amount
FROM reconciliation_records
WHERE origin = 'FILE' AND type = 'RETURN' AND business_date = $1
  AND ($2::text IS NULL OR store = $2) AND ($3::text IS NULL OR terminal = $3)
GROUP BY store, terminal, state"""


@dataclass
class Totals:
    sales: int = 0
    sales_amount: int = 0
    reversals: int = 0
    reversals_amount: int = 0
    pool_returns: int = 0  # returns given back to the convênio's balance
    pool_returns_amount: int = 0
    credit_returns: int = 0  # returns refunded as the customer's DEVOLUCAO credit
    credit_returns_amount: int = 0

    @property
    def returns(self) -> int:
        return self.pool_returns + self.credit_returns

    @property
    def returns_amount(self) -> int:
        return self.pool_returns_amount + self.credit_returns_amount

    @property
    def net_amount(self) -> int:
        """What the convênio is charged: a credit refund leaves the sale charged."""
        return self.sales_amount - self.reversals_amount - self.pool_returns_amount

    def add(self, other: Totals) -> None:
        for name in (
            "sales",
            "sales_amount",
            "reversals",
            "reversals_amount",
            "pool_returns",
            "pool_returns_amount",
            "credit_returns",
            "credit_returns_amount",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {
            "sales": self.sales,
            "sales_amount": self.sales_amount,
            "reversals": self.reversals,
            "reversals_amount": self.reversals_amount,
            "returns": self.returns,
            "returns_amount": self.returns_amount,
            "pool_returns": self.pool_returns,
            "pool_returns_amount": self.pool_returns_amount,
            "credit_returns": self.credit_returns,
            "credit_returns_amount": self.credit_returns_amount,
            "net_amount": self.net_amount,
        }


@dataclass(frozen=True)
class ReturnTaken:
    """A return taken at the terminal on the day, and the sale it gave back part of."""

    id: str
    at: datetime.datetime
    amount: int
    refund: str  # POOL or CREDIT
    credit_reference: str | None  # CREDIT: the DEVOLUCAO credit it became
    reason: str | None
    empenho_id: str
    coupon: str
    convenio: str
    participant: str
    sale_store: str
    sale_terminal: str
    sale_date: datetime.date

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "amount": self.amount,
            "refund": self.refund,
            "credit_reference": self.credit_reference,
            "reason": self.reason,
            "empenho": self.empenho_id,
            "coupon": self.coupon,
            "convenio": self.convenio,
            "participant": self.participant,
            "sale_store": self.sale_store,
            "sale_terminal": self.sale_terminal,
            "sale_date": self.sale_date.isoformat(),
        }


def _file_lines(states: dict[str, tuple[int, int]]) -> dict[str, Any]:
    return {
        "file_lines": sum(n for n, _ in states.values()),
        "file_amount": sum(a for _, a in states.values()),
        "states": {s: states.get(s, (0, 0))[0] for s in STATES if s != "INFORMATIVE"},
    }


@dataclass
class TerminalClosing:
    store: str
    terminal: str
    totals: Totals = field(default_factory=Totals)
    convenios: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    participants: dict[tuple[str, str], Totals] = field(default_factory=lambda: defaultdict(Totals))
    returns: list[ReturnTaken] = field(default_factory=list)
    # the day's closing-file lines of this terminal, per reconciliation state: (lines, amount)
    reconciliation: dict[str, tuple[int, int]] = field(default_factory=dict)
    return_reconciliation: dict[str, tuple[int, int]] = field(default_factory=dict)  # amounts given back

    def as_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "terminal": self.terminal,
            "totals": self.totals.as_dict(),
            "convenios": [{"convenio": c, **t.as_dict()} for c, t in sorted(self.convenios.items())],
            "participants": [
                {"convenio": c, "participant": p, **t.as_dict()} for (c, p), t in sorted(self.participants.items())
            ],
            "returns": [r.as_dict() for r in self.returns],
            "reconciliation": _file_lines(self.reconciliation),
            "return_reconciliation": _file_lines(self.return_reconciliation),
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
    """The closing of business day `on`, of every store and terminal or of those given: the
    sales and reversals of the terminals' sales, the returns the terminals took."""
    start, end = any_zone_bounds(on)
    by_terminal: dict[tuple[str, str], TerminalClosing] = {}

    def closing_of(row: asyncpg.Record) -> TerminalClosing:
        key = (row["store"], row["terminal"])
        if key not in by_terminal:
            by_terminal[key] = TerminalClosing(*key)
        return by_terminal[key]

    for row in await conn.fetch(SALES, start, end, store, terminal, on):
        t = closing_of(row)
        part = Totals(sales=row["n"], sales_amount=row["amount"])
        for totals in (t.totals, t.convenios[row["convenio"]], t.participants[(row["convenio"], row["participant"])]):
            totals.add(part)
    for row in await conn.fetch(REVERSALS, start, end, store, terminal, on):
        t = closing_of(row)
        part = Totals(reversals=row["n"], reversals_amount=row["amount"])
        for totals in (t.totals, t.convenios[row["convenio"]], t.participants[(row["convenio"], row["participant"])]):
            totals.add(part)
    for row in await conn.fetch(RETURNS, start, end, store, terminal, on):
        t = closing_of(row)
        if row["refund"] == "CREDIT":
            part = Totals(credit_returns=row["n"], credit_returns_amount=row["amount"])
        else:
            part = Totals(pool_returns=row["n"], pool_returns_amount=row["amount"])
        for totals in (t.totals, t.convenios[row["convenio"]], t.participants[(row["convenio"], row["participant"])]):
            totals.add(part)
    for row in await conn.fetch(RETURN_LIST, start, end, store, terminal, on):
        closing_of(row).returns.append(
            ReturnTaken(
                row["id"],
                row["at"],
                row["amount"],
                row["refund"],
                row["credit_reference"],
                row["reason"],
                row["empenho_id"],
                row["coupon"] or "",
                row["convenio"],
                row["participant"],
                row["sale_store"],
                row["sale_terminal"],
                row["sale_day"],
            )
        )
    for row in await conn.fetch(RECONCILED, on, store, terminal):
        closing_of(row).reconciliation[row["state"]] = (row["n"], row["amount"])
    for row in await conn.fetch(RETURNS_RECONCILED, on, store, terminal):
        closing_of(row).return_reconciliation[row["state"]] = (row["n"], row["amount"])
    return Closing(on, store, terminal, [by_terminal[k] for k in sorted(by_terminal)])
