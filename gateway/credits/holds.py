"""Credit holds: an order pays with the customer's credits. A hold is placed over as many credits
as it needs, then committed (all or part), cancelled (voided or reversed) or expired, like an
empenho (gateway/holds/lifecycle.py is the life both share). Each step is one Lua script
(credit_hold, credit_commit, credit_cancel, credit_expire); which credits a hold takes and what a
partial commit gives back are in docs/credits.md.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.credits.credits import check_store
from gateway.credits.schemas import (
    CreditHeld,
    CreditHoldOutcome,
    CreditHoldPart,
    CreditHoldRequest,
    CreditHoldView,
    CreditUsed,
)
from gateway.holds import lifecycle
from gateway.holds.lifecycle import CREDIT_HOLD, Answer
from gateway.holds.schemas import CancelRequest, CommitRequest, HistoryEntry
from gateway.platform.clock import iso, rfc3339
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.ids import credit_hold_shard, new_credit_hold_id
from gateway.platform.services import Services

_decode = msgspec.json.Decoder().decode


def _used(items: Any) -> list[CreditUsed]:
    # Lua's JSON writes an empty list as {}: no credit was used
    return [CreditUsed(i["reference"], i["type"], i["amount"]) for i in items] if isinstance(items, list) else []


def _held(r: dict[str, Any]) -> CreditHeld:
    return CreditHeld(
        id=r["id"],
        status=r["status"],
        customer=r["customer"],
        amount=r["amount"],
        order=r["order"],
        credits=_used(r["credits"]),
        available=r["available"],
        expires_at=rfc3339(r["expires_at"]),
        protocol=r["protocol"],
    )


def _outcome(r: dict[str, Any]) -> CreditHoldOutcome:
    return CreditHoldOutcome(
        id=r["id"], status=r["status"], amount=r["amount"], credits=_used(r["credits"]), protocol=r["protocol"]
    )


async def hold(svc: Services, api_key_id: str, idempotency_key: str, req: CreditHoldRequest) -> Answer:
    """Hold `amount` over the customer's credits for an order (credit_hold.lua)."""
    check_store(req.channel, req.store, "store")
    k, s = svc.keys, svc.settings
    fingerprint = lifecycle.fingerprint(b"credit-hold:", req)
    idem = await lifecycle.claim(svc, api_key_id, idempotency_key, fingerprint)
    shard = k.shard_of(req.customer)
    now = svc.now_ms()
    hold_id = new_credit_hold_id(shard)
    # index the hold under its order before it exists: a reader skips an id with no hold (a
    # decline, a replay), but never misses a hold
    index = k.order_holds(req.order)
    async with svc.redis.pipeline(transaction=False) as pipe:
        pipe.sadd(index, hold_id)
        pipe.expire(index, s.hold_ttl_s + s.final_empenho_ttl_s)
        await pipe.execute()
    res = await svc.run(
        "credit_hold",
        [
            k.credits(req.customer),
            k.credits_open(req.customer),
            k.credit_idempotency(req.customer, api_key_id, idem),
            k.credit_hold(shard, hold_id),
            k.credit_pending(shard),
            k.events(shard),
        ],
        [
            req.customer,
            req.amount,
            now,
            now + s.hold_ttl_s * 1000,
            hold_id,
            svc.protocol(),
            fingerprint,
            s.idempotency_ttl_s,
            req.order,
            req.channel,
            req.store or "",
            req.terminal or "",
            api_key_id,
            idem,
        ],
    )
    return lifecycle.placed(res, _held)


async def commit(svc: Services, hold_id: str, req: CommitRequest) -> Answer:
    """Post the hold: all of it, or less (the rest goes back to the credits, last-picked first)."""
    shard, (customer,) = await lifecycle.locate(svc, CREDIT_HOLD, hold_id)
    res = await svc.run(
        "credit_commit",
        CREDIT_HOLD.lifecycle_keys(svc.keys, shard, hold_id, (customer,)),
        [
            hold_id,
            svc.now_ms(),
            svc.protocol(),
            req.coupon,
            "" if req.amount is None else req.amount,
            svc.settings.final_empenho_ttl_s,
            customer,
        ],
    )
    return lifecycle.settled(res, _outcome)


async def cancel(svc: Services, hold_id: str, req: CancelRequest) -> Answer:
    """PENDING -> CANCELLED (all back), COMMITTED -> REVERSED (each committed part back)."""
    shard, (customer,) = await lifecycle.locate(svc, CREDIT_HOLD, hold_id)
    res = await svc.run(
        "credit_cancel",
        CREDIT_HOLD.lifecycle_keys(svc.keys, shard, hold_id, (customer,)),
        [hold_id, svc.now_ms(), svc.protocol(), req.reason or "", svc.settings.final_empenho_ttl_s, customer],
    )
    return lifecycle.settled(res, _outcome)


# --- reading a hold --------------------------------------------------------------------------
async def get(svc: Services, hold_id: str) -> CreditHoldView:
    shard = credit_hold_shard(hold_id, svc.settings.shards)
    if shard is None:
        raise ApiError(ErrorCode.UNKNOWN_CREDIT_HOLD)
    raw = await svc.redis.hgetall(svc.keys.credit_hold(shard, hold_id))
    if not raw:  # a final hold leaves Redis after a while; the ledger keeps it
        return await _stored(svc, hold_id)
    h = {key.decode(): value.decode() for key, value in raw.items()}
    parts = _decode(h["parts"])
    credits = await _credit_records(svc, h["customer"], [p["c"] for p in parts])
    view = CreditHoldView(
        id=h["id"],
        customer=h["customer"],
        status=h["status"],
        amount=int(h["amount"]),
        order=h["order"],
        channel=h["channel"],
        parts=[_part(credits.get(p["c"], {}), p["c"], p["h"], p.get("k")) for p in parts],
        created_at=rfc3339(int(h["created_at"])),
        expires_at=rfc3339(int(h["expires_at"])),
        protocol=h["protocol"],
        history=[
            HistoryEntry(e["status"], rfc3339(e["at"]), e["protocol"], e["amount"]) for e in _decode(h["history"])
        ],
    )
    if h.get("store"):
        view.store = h["store"]
    if h.get("terminal"):
        view.terminal = h["terminal"]
    if "committed_amount" in h:
        view.committed_amount = int(h["committed_amount"])
        view.coupon = h["coupon"]
    if h.get("cancel_reason"):
        view.cancel_reason = h["cancel_reason"]
    return view


def _part(rec: dict[str, Any], credit: str, held: int, committed: int | None) -> CreditHoldPart:
    part = CreditHoldPart(credit=credit, reference=rec.get("ref", ""), type=rec.get("type", ""), held=held)
    if committed is not None:
        part.committed = committed
    return part


async def _credit_records(svc: Services, customer: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    raw = await svc.redis.hmget(svc.keys.credits(customer), ids)
    return {i: _decode(r) for i, r in zip(ids, raw, strict=True) if r is not None}


HOLD_SQL = "SELECT * FROM credit_holds WHERE id = $1"
HOLD_PARTS_SQL = """SELECT p.credit_id, p.held, p.committed, c.reference, c.type
                    FROM credit_hold_parts p JOIN credits c ON c.id = p.credit_id
                    WHERE p.hold_id = $1 ORDER BY p.seq"""
HOLD_HISTORY_SQL = "SELECT status, at, protocol, amount FROM credit_hold_history WHERE hold_id = $1 ORDER BY seq"


async def _stored(svc: Services, hold_id: str) -> CreditHoldView:
    rows = await svc.ledger.fetch(HOLD_SQL, hold_id)
    if not rows:
        raise ApiError(ErrorCode.UNKNOWN_CREDIT_HOLD)
    h = rows[0]
    parts = await svc.ledger.fetch(HOLD_PARTS_SQL, hold_id)
    history = await svc.ledger.fetch(HOLD_HISTORY_SQL, hold_id)
    view = CreditHoldView(
        id=h["id"],
        customer=h["customer"],
        status=h["status"],
        amount=h["amount"],
        order=h["order_ref"],
        channel=h["channel"],
        parts=[
            _part({"ref": p["reference"], "type": p["type"]}, p["credit_id"], p["held"], p["committed"]) for p in parts
        ],
        created_at=iso(h["created_at"]),
        expires_at=iso(h["expires_at"]),
        protocol=h["protocol"],
        history=[HistoryEntry(e["status"], iso(e["at"]), e["protocol"], e["amount"]) for e in history],
    )
    if h["store"]:
        view.store = h["store"]
    if h["terminal"]:
        view.terminal = h["terminal"]
    if h["committed_amount"] is not None:
        view.committed_amount = h["committed_amount"]
        view.coupon = h["coupon"]
    if h["cancel_reason"]:
        view.cancel_reason = h["cancel_reason"]
    return view
