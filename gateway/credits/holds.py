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
    CreditGivenBack,
    CreditHeld,
    CreditHoldOutcome,
    CreditHoldPart,
    CreditHoldRequest,
    CreditHoldView,
    CreditReturnEntry,
    CreditUsed,
)
from gateway.holds import lifecycle
from gateway.holds.lifecycle import CREDIT_HOLD, Answer
from gateway.holds.schemas import CancelRequest, CommitRequest, HistoryEntry
from gateway.platform.clock import rfc3339, to_ms
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.ids import credit_hold_shard, new_credit_hold_id
from gateway.platform.services import Services

_encode = msgspec.json.Encoder().encode
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


async def commit(svc: Services, hold_id: str, req: CommitRequest, scope: tuple[str, str] = ("", "")) -> Answer:
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
            *scope,
        ],
    )
    return lifecycle.settled(res, _outcome)


async def cancel(svc: Services, hold_id: str, req: CancelRequest, scope: tuple[str, str] = ("", "")) -> Answer:
    """PENDING -> CANCELLED (all back), COMMITTED -> REVERSED (each committed part back); a hold
    Redis forgot is brought back from the ledger first."""
    shard, (customer,) = await lifecycle.locate(svc, CREDIT_HOLD, hold_id, lambda: _stored_fields(svc, hold_id))
    res = await svc.run(
        "credit_cancel",
        CREDIT_HOLD.lifecycle_keys(svc.keys, shard, hold_id, (customer,)),
        [hold_id, svc.now_ms(), svc.protocol(), req.reason or "", svc.settings.final_empenho_ttl_s, customer, *scope],
    )
    return lifecycle.settled(res, _outcome)


# --- reading a hold --------------------------------------------------------------------------
async def get(svc: Services, hold_id: str) -> CreditHoldView:
    shard = credit_hold_shard(hold_id, svc.settings.shards)
    if shard is None:
        raise ApiError(ErrorCode.UNKNOWN_CREDIT_HOLD)
    raw = await svc.redis.hgetall(svc.keys.credit_hold(shard, hold_id))
    if raw:
        h = {key.decode(): value.decode() for key, value in raw.items()}
        parts = _decode(h["parts"])
        return _view(h, await _credit_records(svc, h["customer"], [p["c"] for p in parts]))
    # a final hold leaves Redis after a while; the ledger keeps it
    stored = await stored_record(svc, hold_id)
    if stored is None:
        raise ApiError(ErrorCode.UNKNOWN_CREDIT_HOLD)
    fields, credits = stored
    return _view({k: str(v) for k, v in fields.items()}, credits)


def _view(h: dict[str, str], credits: dict[str, dict[str, Any]]) -> CreditHoldView:
    """A credit hold from its record as Redis keeps it (or as the ledger rebuilds it), with the
    records of the credits it took (for their reference and type)."""
    view = CreditHoldView(
        id=h["id"],
        customer=h["customer"],
        status=h["status"],
        amount=int(h["amount"]),
        order=h["order"],
        channel=h["channel"],
        parts=[_part(credits.get(p["c"], {}), p) for p in _list(_decode(h["parts"]))],
        created_at=rfc3339(int(h["created_at"])),
        expires_at=rfc3339(int(h["expires_at"])),
        protocol=h["protocol"],
        history=[
            HistoryEntry(e["status"], rfc3339(e["at"]), e["protocol"], e["amount"])
            for e in _list(_decode(h["history"]))
        ],
    )
    if h.get("store"):
        view.store = h["store"]
    if h.get("terminal"):
        view.terminal = h["terminal"]
    if h.get("committed_amount"):
        committed, returned = int(h["committed_amount"]), int(h.get("returned") or 0)
        view.committed_amount = committed
        view.coupon = h["coupon"]
        view.returned = returned
        view.returnable = committed - returned if h["status"] == "COMMITTED" else 0
        view.returns = [_return(r) for r in _list(_decode(h["returns"]) if h.get("returns") else [])]
    if h.get("cancel_reason"):
        view.cancel_reason = h["cancel_reason"]
    return view


def _part(rec: dict[str, Any], p: dict[str, Any]) -> CreditHoldPart:
    part = CreditHoldPart(credit=p["c"], reference=rec.get("ref", ""), type=rec.get("type", ""), held=p["h"])
    if p.get("k") is not None:
        part.committed = p["k"]
        part.returned = p.get("r") or 0
    return part


def _return(r: dict[str, Any]) -> CreditReturnEntry:
    entry = CreditReturnEntry(
        id=r["id"],
        amount=r["amount"],
        at=rfc3339(r["at"]),
        protocol=r["protocol"],
        credits=[given_back(c) for c in _list(r.get("credits"))],
    )
    for name in ("store", "terminal", "reason"):
        if r.get(name):
            setattr(entry, name, r[name])
    return entry


def given_back(c: dict[str, Any]) -> CreditGivenBack:
    return CreditGivenBack(c["reference"], c["type"], c["amount"], bool(c.get("expired")))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []  # Lua's JSON writes an empty list as {}


async def _credit_records(svc: Services, customer: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    raw = await svc.redis.hmget(svc.keys.credits(customer), ids)
    return {i: _decode(r) for i, r in zip(ids, raw, strict=True) if r is not None}


# -- the ledger's record of a credit hold, shaped as Redis keeps it --------------------------------
HOLD_SQL = "SELECT * FROM credit_holds WHERE id = $1"
HOLD_PARTS_SQL = """SELECT p.credit_id, p.held, p.committed, p.returned, c.reference, c.type
                    FROM credit_hold_parts p JOIN credits c ON c.id = p.credit_id
                    WHERE p.hold_id = $1 ORDER BY p.seq"""
HOLD_HISTORY_SQL = "SELECT status, at, protocol, amount FROM credit_hold_history WHERE hold_id = $1 ORDER BY seq"
HOLD_RETURNS_SQL = "SELECT * FROM credit_hold_returns WHERE hold_id = $1 ORDER BY at, id"


async def stored_record(svc: Services, hold_id: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]] | None:
    """The hold's Redis record from the ledger, with the reference and type of each credit it
    took (Postgres down: LEDGER_UNAVAILABLE); None when the ledger does not know it either."""
    rows = await svc.ledger.fetch(HOLD_SQL, hold_id)
    if not rows:
        return None
    parts = await svc.ledger.fetch(HOLD_PARTS_SQL, hold_id)
    history = await svc.ledger.fetch(HOLD_HISTORY_SQL, hold_id)
    returns = await svc.ledger.fetch(HOLD_RETURNS_SQL, hold_id)
    credits = {p["credit_id"]: {"ref": p["reference"], "type": p["type"]} for p in parts}
    return record_of(rows[0], parts, history, returns), credits


async def _stored_fields(svc: Services, hold_id: str) -> tuple[dict[str, Any], list[str]] | None:
    stored = await stored_record(svc, hold_id)
    return None if stored is None else (stored[0], [])


def record_of(h: Any, parts: list[Any], history: list[Any], returns: list[Any]) -> dict[str, Any]:
    """A credit hold's Redis hash fields from its ledger rows: what a return of a hold Redis forgot
    brings back."""
    fields: dict[str, Any] = {
        "id": h["id"],
        "customer": h["customer"],
        "amount": h["amount"],
        "status": h["status"],
        "order": h["order_ref"],
        "channel": h["channel"],
        "store": h["store"] or "",
        "terminal": h["terminal"] or "",
        "created_at": to_ms(h["created_at"]),
        "expires_at": to_ms(h["expires_at"]),
        "protocol": h["protocol"],
        "api_key": h["api_key_id"],
        "parts": _encode([_stored_part(p) for p in parts]).decode(),
        "history": _encode([_stored_entry(e) for e in history]).decode(),
    }
    if h["committed_amount"] is not None:
        fields.update(
            committed_amount=h["committed_amount"],
            coupon=h["coupon"],
            commit_result=h["commit_result"],
            returned=h["returned"],
            returns=_encode([_stored_return(r) for r in returns]).decode(),
        )
    if h["ended_at"] is not None:
        fields["ended_at"] = to_ms(h["ended_at"])
    if h["cancel_result"] is not None:
        fields.update(cancel_reason=h["cancel_reason"] or "", cancel_result=h["cancel_result"])
    return fields


def _stored_entry(e: Any) -> dict[str, Any]:
    return {"status": e["status"], "at": to_ms(e["at"]), "protocol": e["protocol"], "amount": e["amount"]}


def _stored_part(p: Any) -> dict[str, Any]:
    part = {"c": p["credit_id"], "h": p["held"]}
    if p["committed"] is not None:
        part.update(k=p["committed"], r=p["returned"])
    return part


def _stored_return(r: Any) -> dict[str, Any]:
    return {
        "id": r["id"],
        "amount": r["amount"],
        "at": to_ms(r["at"]),
        "store": r["store"] or "",
        "terminal": r["terminal"] or "",
        "reason": r["reason"] or "",
        "protocol": r["protocol"],
        "credits": _decode(r["credits"]) if isinstance(r["credits"], str | bytes) else r["credits"],
    }
