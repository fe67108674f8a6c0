"""The customers' current accounts' projection (sql/006_credits.sql), from the events of the
credit_*.lua and order_status_*.lua scripts:

  credits              each credit with what it has remaining (every event that moves a credit
                       carries the credit's remaining after it; the last one of a batch wins)
  credit_holds, _parts each hold, and what it took from each credit (and committed)
  credit_hold_history  each status a hold went through, under its protocol
  credit_movements     finance's record: CREDIT (registered), DEBIT (a committed part), RETURN
                       (a part given back by a reversal or a return; RETURN_EXPIRED to a credit
                       expired meanwhile), one row per credit, with reference and type
  credit_hold_returns  each return of a committed hold, and what went back to which credit
  order_status_params, order_statuses   the ERP's order statuses: parameters and reports

Events of one customer all live in its shard's stream, so the fold sees them in script order.
The decisions themselves go to the decision log (ledger/writer/decisions.py).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import asyncpg

from gateway.platform.clock import from_ms
from ledger.writer import events
from ledger.writer.decisions import credit_hold_answer
from ledger.writer.events import Event, answer_of, as_list
from ledger.writer.fold import Projection, Table, copy, json_text

MOVEMENT_COLUMNS = (
    "movement",
    "protocol",
    "at",
    "customer",
    "credit_id",
    "reference",
    "type",
    "kind",
    "amount",
    "remaining_after",
    "hold_id",
    "order_ref",
    "channel",
    "store",
    "terminal",
    "return_id",
    "sale",
)
HISTORY_COLUMNS = ("protocol", "hold_id", "status", "at", "amount")
RETURN_COLUMNS = (
    "id",
    "hold_id",
    "protocol",
    "at",
    "amount",
    "returned_after",
    "store",
    "terminal",
    "reason",
    "api_key_id",
    "credits",
)


def _or_none(value: Any) -> Any:
    return value if value not in ("", None) else None


class CreditFold(Projection):
    """One batch's credit events folded into row changes."""

    name: ClassVar[str] = events.CREDITS

    def __init__(self) -> None:
        self.credits = Table("credits", ("id",))
        self.holds = Table("credit_holds", ("id",))
        self.parts = Table("credit_hold_parts", ("hold_id", "seq"))
        self.params = Table("order_status_params", ("singleton",))
        self.statuses = Table("order_statuses", ("order_ref", "status"))
        self.history: list[tuple] = []
        self.movements: list[tuple] = []
        self.returns: list[tuple] = []

    # -- helpers --------------------------------------------------------------------------------
    def _remaining(self, parts: list[dict[str, Any]]) -> None:
        for p in parts:
            self.credits.put((p["credit"],), {"remaining": int(p["remaining"])})

    def _movement(
        self,
        e: Event,
        i: int,
        customer: str,
        p: dict[str, Any],
        kind: str,
        amount: int,
        d: dict,
        sale: tuple[str | None, str | None] = (None, None),
    ) -> None:
        self.movements.append(
            (
                f"{e.protocol}.{i}",
                e.protocol,
                e.at,
                customer,
                p["credit"],
                p["reference"],
                p["type"],
                kind,
                amount,
                int(p["remaining"]),
                d.get("id"),
                _or_none(d.get("order")),
                _or_none(d.get("channel")),
                _or_none(d.get("store")),
                _or_none(d.get("terminal")),
                *sale,
            )
        )

    def _given_back(self, e: Event, d: dict[str, Any], return_id: str | None) -> None:
        """A reversal's or a return's movements: each part back to its credit."""
        for i, p in enumerate(as_list(d.get("parts")), start=1):
            kind = "RETURN_EXPIRED" if p.get("expired") else "RETURN"
            self._movement(e, i, d["customer"], p, kind, int(p["amount"]), d, (return_id, d["id"]))

    def _ended(self, e: Event, d: dict[str, Any], status: str) -> None:
        cols: dict[str, Any] = {"status": status, "ended_at": e.at}
        if status in ("CANCELLED", "REVERSED"):
            cols["cancel_reason"] = _or_none(d.get("reason"))
            cols["cancel_result"] = json_text(answer_of(d))
        self.holds.put((d["id"],), cols)
        self.history.append((e.protocol, d["id"], status, e.at, int(d["amount"])))
        self._remaining(as_list(d.get("parts")))

    # -- credits --------------------------------------------------------------------------------
    def _credit_created(self, e: Event, d: dict[str, Any]) -> None:
        c = d["credit"]
        row = {
            "customer": c["customer"],
            "reference": c["ref"],
            "type": c["type"],
            "amount": int(c["amount"]),
            "remaining": int(c["remaining"]),
            "channel": c["channel"],
            "store": _or_none(c.get("store")),
            "terminal": _or_none(c.get("terminal")),
            "order_ref": _or_none(c.get("order")),
            "expires_at": from_ms(c.get("expires_at")),
            "seq": int(c["seq"]),
            "fingerprint": c["fp"],
            "api_key_id": d.get("api_key") or "",
            "protocol": e.protocol,
            "created_at": e.at,
        }
        self.credits.put((c["id"],), row, full=True)
        part = {"credit": c["id"], "reference": c["ref"], "type": c["type"], "remaining": c["amount"]}
        origin = {
            "order": c.get("order"),
            "channel": c["channel"],
            "store": c.get("store"),
            "terminal": c.get("terminal"),
        }
        refunds = (_or_none(d.get("return_id")), _or_none(d.get("sale")))
        self._movement(e, 0, c["customer"], part, "CREDIT", int(c["amount"]), origin, refunds)

    # -- holds ----------------------------------------------------------------------------------
    def _credit_held(self, e: Event, d: dict[str, Any]) -> None:
        parts = as_list(d.get("parts"))
        answer = credit_hold_answer(d)
        row = {
            "customer": d["customer"],
            "amount": int(d["amount"]),
            "status": "PENDING",
            "order_ref": d["order"],
            "channel": d["channel"],
            "store": _or_none(d.get("store")),
            "terminal": _or_none(d.get("terminal")),
            "api_key_id": d.get("api_key") or "",
            "idem": _or_none(d.get("idem")),
            "fingerprint": _or_none(d.get("fp")),
            "protocol": e.protocol,
            "created_at": e.at,
            "expires_at": from_ms(d["expires_at"]),
            "answer": json_text(answer),
        }
        self.holds.put((d["id"],), row, full=True)
        for i, p in enumerate(parts, start=1):
            self.parts.put((d["id"], i), {"credit_id": p["credit"], "held": int(p["amount"]), "committed": None}, True)
        self._remaining(parts)
        self.history.append((e.protocol, d["id"], "PENDING", e.at, int(d["amount"])))

    def _credit_committed(self, e: Event, d: dict[str, Any]) -> None:
        parts = as_list(d.get("parts"))
        answer = answer_of(d)
        self.holds.put(
            (d["id"],),
            {
                "status": "COMMITTED",
                "committed_amount": int(d["amount"]),
                "coupon": d["coupon"],
                "committed_at": e.at,
                "ended_at": e.at,
                "commit_result": json_text(answer),
            },
        )
        for i, p in enumerate(parts, start=1):
            self.parts.put((d["id"], i), {"committed": int(p["amount"])})
            if int(p["amount"]):
                self._movement(e, i, d["customer"], p, "DEBIT", -int(p["amount"]), d)
        self._remaining(parts)
        self.history.append((e.protocol, d["id"], "COMMITTED", e.at, int(d["amount"])))

    def _credit_cancelled(self, e: Event, d: dict[str, Any]) -> None:
        self._ended(e, d, "CANCELLED")

    def _credit_reversed(self, e: Event, d: dict[str, Any]) -> None:
        self._ended(e, d, "REVERSED")
        self._given_back(e, d, None)

    def _credit_expired(self, e: Event, d: dict[str, Any]) -> None:
        self._ended(e, d, "EXPIRED")

    def _credit_returned(self, e: Event, d: dict[str, Any]) -> None:
        parts = as_list(d.get("parts"))
        self.holds.put((d["id"],), {"returned": int(d["returned"])})
        for p in parts:
            self.parts.put((d["id"], int(p["part"])), {"returned": int(p["returned"])})
        self._remaining(parts)
        self._given_back(e, d, d["return_id"])
        credits = [
            dict(reference=p["reference"], type=p["type"], amount=int(p["amount"]), expired=bool(p.get("expired")))
            for p in parts
        ]
        self.returns.append(
            (
                d["return_id"],
                d["id"],
                e.protocol,
                e.at,
                int(d["amount"]),
                int(d["returned"]),
                _or_none(d.get("store")),
                _or_none(d.get("terminal")),
                _or_none(d.get("reason")),
                d.get("api_key") or "",
                json.dumps(credits),
            )
        )

    # -- the order-status integration -------------------------------------------------------------
    def _order_status_params_set(self, e: Event, d: dict[str, Any]) -> None:
        row = {
            "commit_statuses": d["commit"],
            "cancel_statuses": d["cancel"],
            "update_balance": d["update_balance"] == "1",
            "updated_at": e.at,
            "updated_by": d.get("by") or "",
        }
        self.params.put((True,), row, full=True)

    def _order_status_processed(self, e: Event, d: dict[str, Any]) -> None:
        report = json.loads(d["report"])
        row = {
            "action": report["action"],
            "update_balance": bool(report["update_balance"]),
            "report": d["report"],
            "protocol": e.protocol,
            "at": e.at,
        }
        self.statuses.put((d["order"], d["status"]), row, full=True)

    # -- writing --------------------------------------------------------------------------------
    async def write(self, conn: asyncpg.Connection) -> None:
        for table in (self.credits, self.holds, self.parts, self.params, self.statuses):
            await table.write(conn)
        await copy(conn, "credit_hold_history", HISTORY_COLUMNS, self.history)
        await copy(conn, "credit_movements", MOVEMENT_COLUMNS, self.movements)
        await copy(conn, "credit_hold_returns", RETURN_COLUMNS, self.returns)

    handlers: ClassVar[dict[str, Any]] = {
        "credit.created": _credit_created,
        "credit.held": _credit_held,
        "credit.committed": _credit_committed,
        "credit.cancelled": _credit_cancelled,
        "credit.reversed": _credit_reversed,
        "credit.expired": _credit_expired,
        "credit.returned": _credit_returned,
        "order.status_params_set": _order_status_params_set,
        "order.status_processed": _order_status_processed,
    }
