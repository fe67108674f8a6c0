"""An order (pedido) and what pays it: the credit holds over the customer's credits, and the
convênio empenhos that carried the order's id.

Where each comes from:
- credit holds: Redis first (the order's index of hold ids, `keys.order_holds`, written before
  each hold is placed, and the live hold records), then Postgres for holds that have left
  Redis; a hold is never missed, however fresh.
- empenhos: Postgres (`empenhos.order_ref`), each one's live status then read from Redis while
  its record is still there. An empenho placed in the last moments, not yet stored by the
  ledger writer, is not listed yet (empenho_hold.lua keeps no index by order).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from gateway.orders.schemas import OrderCredit, OrderEmpenho, OrderView
from gateway.platform.clock import to_ms
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.http.params import invalid
from gateway.platform.http.schemas import ORDER_PATTERN
from gateway.platform.ids import credit_hold_shard, empenho_shard
from gateway.platform.services import Services

_ORDER = re.compile(ORDER_PATTERN)
_decode = msgspec.json.Decoder().decode


@dataclass
class Part:
    credit: str
    reference: str
    type: str
    held: int
    committed: int | None


@dataclass
class CreditHoldState:
    id: str
    customer: str
    status: str
    amount: int
    created_at: int
    parts: list[Part]


@dataclass
class EmpenhoState:
    id: str
    convenio: str
    participant: str
    amount: int
    status: str
    committed_amount: int | None
    live: bool  # its record is still in Redis, so its scripts can act on it


@dataclass
class OrderHolds:
    credit_holds: dict[str, CreditHoldState] = field(default_factory=dict)
    empenhos: dict[str, EmpenhoState] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.credit_holds and not self.empenhos


STORED_HOLDS = """SELECT id, order_ref, customer, status, amount, created_at FROM credit_holds
                  WHERE order_ref = ANY($1::text[])"""
STORED_PARTS = """SELECT p.hold_id, p.credit_id, p.held, p.committed, c.reference, c.type
                  FROM credit_hold_parts p JOIN credits c ON c.id = p.credit_id
                  WHERE p.hold_id = ANY($1::text[]) ORDER BY p.hold_id, p.seq"""
STORED_EMPENHOS = """SELECT id, order_ref, convenio, participant, amount, status, committed_amount
                     FROM empenhos WHERE order_ref = ANY($1::text[]) ORDER BY created_at, id"""


def check_order(order: str) -> None:
    if not _ORDER.fullmatch(order):
        raise invalid("order", "`order` is not a valid order id.")


async def find(svc: Services, orders: list[str]) -> dict[str, OrderHolds]:
    """The credit holds and empenhos of each order (Postgres down: LEDGER_UNAVAILABLE)."""
    found = {o: OrderHolds() for o in orders}
    k = svc.keys
    async with svc.redis.pipeline(transaction=False) as pipe:
        for o in orders:
            pipe.smembers(k.order_holds(o))
        indexed = await pipe.execute()
    candidates = [
        (o, i.decode(), shard)
        for o, ids in zip(orders, indexed, strict=True)
        for i in sorted(ids)
        if (shard := credit_hold_shard(i.decode(), svc.settings.shards)) is not None
    ]
    async with svc.redis.pipeline(transaction=False) as pipe:
        for _, hold_id, shard in candidates:
            pipe.hgetall(k.credit_hold(shard, hold_id))
        records = await pipe.execute()
    live: list[tuple[str, dict[str, str]]] = []
    for (o, _, _), raw in zip(candidates, records, strict=True):
        if raw:  # a declined or replayed request left only its index entry
            live.append((o, {key.decode(): value.decode() for key, value in raw.items()}))
    credit_info = await _credit_info(svc, live)
    for o, h in live:
        parts = []
        for p in _decode(h["parts"]):
            rec = credit_info.get((h["customer"], p["c"]), {})
            parts.append(Part(p["c"], rec.get("ref", ""), rec.get("type", ""), p["h"], p.get("k")))
        found[o].credit_holds[h["id"]] = CreditHoldState(
            h["id"], h["customer"], h["status"], int(h["amount"]), int(h["created_at"]), parts
        )

    stored = await svc.ledger.fetch(STORED_HOLDS, orders)
    missing = [r for r in stored if r["id"] not in found[r["order_ref"]].credit_holds]
    if missing:
        parts_of: dict[str, list[Part]] = {}
        for p in await svc.ledger.fetch(STORED_PARTS, [r["id"] for r in missing]):
            part = Part(p["credit_id"], p["reference"], p["type"], p["held"], p["committed"])
            parts_of.setdefault(p["hold_id"], []).append(part)
        for r in missing:
            found[r["order_ref"]].credit_holds[r["id"]] = CreditHoldState(
                r["id"],
                r["customer"],
                r["status"],
                r["amount"],
                to_ms(r["created_at"]),
                parts_of.get(r["id"], []),
            )

    empenhos = await svc.ledger.fetch(STORED_EMPENHOS, orders)
    shards = [empenho_shard(r["id"], svc.settings.shards) for r in empenhos]
    async with svc.redis.pipeline(transaction=False) as pipe:
        for r, shard in zip(empenhos, shards, strict=True):
            pipe.hmget(k.empenho(shard or 0, r["id"]), "status", "committed_amount")
        now = await pipe.execute()
    for r, shard, (status, committed) in zip(empenhos, shards, now, strict=True):
        is_live = shard is not None and status is not None
        found[r["order_ref"]].empenhos[r["id"]] = EmpenhoState(
            r["id"],
            r["convenio"],
            r["participant"],
            r["amount"],
            status.decode() if is_live else r["status"],
            (int(committed) if committed else None) if is_live else r["committed_amount"],
            is_live,
        )
    return found


async def _credit_info(svc: Services, live: list[tuple[str, dict[str, str]]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(customer, credit id) -> the credit's record, for the parts of the live holds."""
    wanted = sorted({(h["customer"], p["c"]) for _, h in live for p in _decode(h["parts"])})
    if not wanted:
        return {}
    async with svc.redis.pipeline(transaction=False) as pipe:
        for customer, credit in wanted:
            pipe.hget(svc.keys.credits(customer), credit)
        raw = await pipe.execute()
    return {w: _decode(r) for w, r in zip(wanted, raw, strict=True) if r is not None}


def _shown_amount(hold: CreditHoldState, part: Part) -> int:
    if hold.status in ("COMMITTED", "REVERSED") and part.committed is not None:
        return part.committed
    return part.held


async def view(svc: Services, order: str) -> OrderView:
    """GET /v1/orders/{order}: every credit used (per hold and credit) and every empenho."""
    check_order(order)
    holds = (await find(svc, [order]))[order]
    if holds.empty:
        raise ApiError(ErrorCode.UNKNOWN_ORDER)
    credits = [
        OrderCredit(p.reference, p.type, _shown_amount(h, p), h.status, h.id, p.credit)
        for h in sorted(holds.credit_holds.values(), key=lambda h: (h.created_at, h.id))
        for p in h.parts
        if _shown_amount(h, p) > 0
    ]
    empenhos = []
    for e in holds.empenhos.values():
        item = OrderEmpenho(e.id, e.convenio, e.participant, e.amount, e.status)
        if e.committed_amount is not None:
            item.committed_amount = e.committed_amount
        empenhos.append(item)
    return OrderView(order=order, credits=credits, empenhos=empenhos)
