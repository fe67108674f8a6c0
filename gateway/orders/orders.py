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
from typing import Any, Literal

import msgspec

from gateway.orders.schemas import OrderCredit, OrderEmpenho, OrderReturn, OrderView
from gateway.platform.clock import rfc3339, to_ms
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
    returned: int = 0


@dataclass
class Returned:
    """A return of one of the order's holds, as its record keeps it."""

    id: str
    amount: int
    at: int
    protocol: str
    store: str
    terminal: str
    refund: str | None = None  # an empenho's: POOL or CREDIT


@dataclass
class CreditHoldState:
    id: str
    customer: str
    status: str
    amount: int
    created_at: int
    parts: list[Part]
    returns: list[Returned] = field(default_factory=list)


@dataclass
class EmpenhoState:
    id: str
    convenio: str
    participant: str
    amount: int
    status: str
    committed_amount: int | None
    live: bool  # its record is still in Redis, so its scripts can act on it
    returned: int = 0
    returns: list[Returned] = field(default_factory=list)


@dataclass
class OrderHolds:
    credit_holds: dict[str, CreditHoldState] = field(default_factory=dict)
    empenhos: dict[str, EmpenhoState] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.credit_holds and not self.empenhos


STORED_HOLDS = """SELECT id, order_ref, customer, status, amount, created_at FROM credit_holds
                  WHERE order_ref = ANY($1::text[])"""
STORED_PARTS = """SELECT p.hold_id, p.credit_id, p.held, p.committed, p.returned, c.reference, c.type
                  FROM credit_hold_parts p JOIN credits c ON c.id = p.credit_id
                  WHERE p.hold_id = ANY($1::text[]) ORDER BY p.hold_id, p.seq"""
STORED_HOLD_RETURNS = """SELECT hold_id, id, amount, at, protocol, store, terminal FROM credit_hold_returns
                         WHERE hold_id = ANY($1::text[]) ORDER BY at, id"""
STORED_EMPENHOS = """SELECT id, order_ref, convenio, participant, amount, status, committed_amount, returned
                     FROM empenhos WHERE order_ref = ANY($1::text[]) ORDER BY created_at, id"""
STORED_EMPENHO_RETURNS = """SELECT empenho_id, id, amount, at, protocol, store, terminal, refund FROM empenho_returns
                            WHERE empenho_id = ANY($1::text[]) ORDER BY at, id"""


def _kept(raw: str | None, refund: bool) -> list[Returned]:
    """The returns a hold's Redis record keeps (JSON; Lua writes an empty list as {})."""
    items = _decode(raw) if raw else []
    return [
        Returned(
            r["id"],
            r["amount"],
            r["at"],
            r["protocol"],
            r.get("store") or "",
            r.get("terminal") or "",
            r.get("refund") if refund else None,
        )
        for r in (items if isinstance(items, list) else [])
    ]


def _stored(r: Any, refund: bool) -> Returned:
    return Returned(
        r["id"],
        r["amount"],
        to_ms(r["at"]),
        r["protocol"],
        r["store"] or "",
        r["terminal"] or "",
        r["refund"] if refund else None,
    )


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
            parts.append(Part(p["c"], rec.get("ref", ""), rec.get("type", ""), p["h"], p.get("k"), p.get("r") or 0))
        found[o].credit_holds[h["id"]] = CreditHoldState(
            h["id"],
            h["customer"],
            h["status"],
            int(h["amount"]),
            int(h["created_at"]),
            parts,
            returns=_kept(h.get("returns"), refund=False),
        )

    stored = await svc.ledger.fetch(STORED_HOLDS, orders)
    missing = [r for r in stored if r["id"] not in found[r["order_ref"]].credit_holds]
    if missing:
        ids = [r["id"] for r in missing]
        parts_of: dict[str, list[Part]] = {}
        for p in await svc.ledger.fetch(STORED_PARTS, ids):
            part = Part(p["credit_id"], p["reference"], p["type"], p["held"], p["committed"], p["returned"])
            parts_of.setdefault(p["hold_id"], []).append(part)
        returns_of: dict[str, list[Returned]] = {}
        for x in await svc.ledger.fetch(STORED_HOLD_RETURNS, ids):
            returns_of.setdefault(x["hold_id"], []).append(_stored(x, refund=False))
        for r in missing:
            found[r["order_ref"]].credit_holds[r["id"]] = CreditHoldState(
                r["id"],
                r["customer"],
                r["status"],
                r["amount"],
                to_ms(r["created_at"]),
                parts_of.get(r["id"], []),
                returns=returns_of.get(r["id"], []),
            )

    empenhos = await svc.ledger.fetch(STORED_EMPENHOS, orders)
    shards = [empenho_shard(r["id"], svc.settings.shards) for r in empenhos]
    async with svc.redis.pipeline(transaction=False) as pipe:
        for r, shard in zip(empenhos, shards, strict=True):
            pipe.hmget(k.empenho(shard or 0, r["id"]), "status", "committed_amount", "returned", "returns")
        now = await pipe.execute()
    stored_returns: dict[str, list[Returned]] = {}
    gone = [
        r["id"] for r, shard, (status, *_) in zip(empenhos, shards, now, strict=True) if shard is None or not status
    ]
    if gone:
        for x in await svc.ledger.fetch(STORED_EMPENHO_RETURNS, gone):
            stored_returns.setdefault(x["empenho_id"], []).append(_stored(x, refund=True))
    for r, shard, (status, committed, returned, returns) in zip(empenhos, shards, now, strict=True):
        if shard is not None and status is not None:
            state = EmpenhoState(
                r["id"],
                r["convenio"],
                r["participant"],
                r["amount"],
                status.decode(),
                int(committed) if committed else None,
                True,
                int(returned or 0),
                _kept(returns.decode() if returns else None, refund=True),
            )
        else:
            state = EmpenhoState(
                r["id"],
                r["convenio"],
                r["participant"],
                r["amount"],
                r["status"],
                r["committed_amount"],
                False,
                r["returned"],
                stored_returns.get(r["id"], []),
            )
        found[r["order_ref"]].empenhos[r["id"]] = state
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
    ordered = sorted(holds.credit_holds.values(), key=lambda h: (h.created_at, h.id))
    credits = [
        OrderCredit(p.reference, p.type, _shown_amount(h, p), h.status, h.id, p.credit, p.returned)
        for h in ordered
        for p in h.parts
        if _shown_amount(h, p) > 0
    ]
    returns = [_return(x, h.id, "CREDIT_HOLD") for h in ordered for x in h.returns]
    empenhos = []
    for e in holds.empenhos.values():
        item = OrderEmpenho(e.id, e.convenio, e.participant, e.amount, e.status)
        if e.committed_amount is not None:
            item.committed_amount = e.committed_amount
            item.returned = e.returned
        empenhos.append(item)
        returns += [_return(x, e.id, "EMPENHO") for x in e.returns]
    returns.sort(key=lambda x: (x.at, x.id))
    return OrderView(order=order, credits=credits, empenhos=empenhos, returns=returns)


def _return(x: Returned, sale: str, kind: Literal["CREDIT_HOLD", "EMPENHO"]) -> OrderReturn:
    shown = OrderReturn(id=x.id, sale=sale, kind=kind, amount=x.amount, at=rfc3339(x.at), protocol=x.protocol)
    if x.store:
        shown.store = x.store
    if x.terminal:
        shown.terminal = x.terminal
    if x.refund:
        shown.refund = x.refund  # type: ignore[assignment]
    return shown
