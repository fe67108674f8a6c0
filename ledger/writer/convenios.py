"""The convênios' projection: convênios and participants (their records and balances), vehicles,
empenhos with their status history, and the movements of every balance (sales, reversals, limit
changes, the month's rollovers and restorations). One projection, because the registry's events
and the money events both set a pool's balance: folded in stream order, the last one wins.
"""

from __future__ import annotations

from typing import Any, ClassVar

import asyncpg

from gateway.holds.empenhos import refund_reference
from gateway.platform.clock import from_ms
from ledger.writer import events
from ledger.writer.events import Event
from ledger.writer.fold import Projection, Table, copy, json_text

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
HISTORY_COLUMNS = ("protocol", "empenho_id", "status", "at", "amount")
RETURN_COLUMNS = (
    "id",
    "empenho_id",
    "protocol",
    "at",
    "amount",
    "returned_after",
    "refund",
    "credit_reference",
    "store",
    "terminal",
    "reason",
    "api_key_id",
)


class ConveniosFold(Projection):
    name: ClassVar[str] = events.CONVENIOS

    def __init__(self) -> None:
        self.convenios = Table("convenios", ("code",))
        self.participants = Table("participants", ("convenio", "participant"))
        self.vehicles = Table("vehicles", ("convenio", "participant", "plate"))
        self.empenhos = Table("empenhos", ("id",))
        self.history: list[tuple] = []
        self.movements: list[tuple] = []
        self.returns: list[tuple] = []

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
            "record": json_text(r),
            "created_at": from_ms(r["created_at"]),
            "updated_at": from_ms(r["updated_at"]),
        }
        self.convenios.put((d["convenio"],), row, full=True)
        delta = row["balance"] - int(d.get("previous_balance", 0))
        if row["shared"] or delta:
            pool = {**d, "balance": row["balance"], "pool": "C"}
            self._movement(e, pool, "LIMIT_CHANGE", delta, None)

    def _participant_created(self, e: Event, d: dict[str, Any]) -> None:
        r = d["record"]
        key = (d["convenio"], d["participant"])
        row = {
            "name": r.get("name", ""),
            "document_digest": r.get("doc_digest") or None,
            "document_sealed": r.get("doc_sealed") or None,
            "document_masked": r.get("doc_masked", ""),
            "status": r["status"],
            "limit": int(r.get("limit") or 0),
            "balance": int(r.get("balance") or 0),
            "reserved": int(r.get("reserved") or 0),
            "record": json_text(r),
            "created_at": from_ms(r["created_at"]),
            "updated_at": from_ms(r["updated_at"]),
        }
        self.participants.put(key, row, full=True)
        if d.get("pw_hash"):  # a new password also clears any lock
            self.participants.put(key, {"pw_hash": d["pw_hash"], "pw_locked_until": None})
        elif d.get("pw_cleared"):  # erased with the person's other data
            self.participants.put(key, {"pw_hash": None, "pw_locked_until": None})
        if "convenio_allocated" in d:
            self.convenios.put((d["convenio"],), {"allocated": int(d["convenio_allocated"])})
        delta = row["limit"] - int(d.get("previous_limit") or 0)
        self._movement(e, {**d, "balance": row["balance"], "pool": "P"}, "LIMIT_CHANGE", delta, d["participant"])

    def _password_locked(self, e: Event, d: dict[str, Any]) -> None:
        self.participants.put((d["convenio"], d["participant"]), {"pw_locked_until": from_ms(d["locked_until"])})

    def _vehicle_saved(self, e: Event, d: dict[str, Any]) -> None:
        v = d["vehicle"]
        row = {
            "description": v.get("description", ""),
            "registered_at": from_ms(v["registered_at"]),
            "last_km": int(v["last_km"]) if v.get("last_km") is not None else None,
            "last_km_at": from_ms(v.get("last_km_at")),
        }
        self.vehicles.put((d["convenio"], d["participant"], v["plate"]), row, full=True)

    def _vehicle_deleted(self, e: Event, d: dict[str, Any]) -> None:
        self.vehicles.delete((d["convenio"], d["participant"], d["plate"]))

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
            "windows": json_text(d["counted_in"]) if d.get("counted_in") else None,
            "protocol": e.protocol,
            "created_at": e.at,
            "expires_at": from_ms(d["expires_at"]),
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
                "commit_result": json_text(d.get("answer") or {}),
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
            cols["cancel_result"] = json_text(d.get("answer") or {})
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

    def _empenho_returned(self, e: Event, d: dict[str, Any]) -> None:
        amount, refund = int(d["amount"]), d["refund"]
        self.empenhos.put((d["id"],), {"returned": int(d["returned"])})
        self._pool(d)
        if refund == "POOL":
            self._movement(e, d, "RETURN", amount, d["participant"])
        self.returns.append(
            (
                d["return_id"],
                d["id"],
                e.protocol,
                e.at,
                amount,
                int(d["returned"]),
                refund,
                refund_reference(d["return_id"]) if refund == "CREDIT" else None,
                d["store"],
                d["terminal"],
                d.get("reason") or None,
                d.get("api_key") or "",
            )
        )

    async def write(self, conn: asyncpg.Connection) -> None:
        # parents before children: the foreign keys check each statement
        for table in (self.convenios, self.participants, self.vehicles, self.empenhos):
            await table.write(conn)
        await copy(conn, "empenho_history", HISTORY_COLUMNS, self.history)
        await copy(conn, "movements", MOVEMENT_COLUMNS, self.movements)
        await copy(conn, "empenho_returns", RETURN_COLUMNS, self.returns)

    handlers: ClassVar[dict[str, Any]] = {
        "convenio.created": _convenio_created,
        "convenio.updated": _convenio_created,
        "participant.created": _participant_created,
        "participant.updated": _participant_created,
        "password.locked": _password_locked,
        "vehicle.saved": _vehicle_saved,
        "vehicle.deleted": _vehicle_deleted,
        "empenho.held": _empenho_held,
        "empenho.committed": _empenho_committed,
        "empenho.cancelled": _empenho_cancelled,
        "empenho.reversed": _empenho_reversed,
        "empenho.expired": _empenho_expired,
        "empenho.returned": _empenho_returned,
        "balance.rolled_over": _balance_rolled_over,
        "balance.restored": _balance_restored,
    }
