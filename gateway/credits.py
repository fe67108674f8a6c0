"""The customers' current account (seed 000): credits registered under a reference, and orders
paying with them through credit holds, placed, committed (posted), cancelled (voided or
reversed) and expired exactly like empenhos.

Each operation is one Lua script (gateway/lua/credit_*.lua) over the customer's keys, all under
the hash tag of `keys.shard_of(customer)`, appending its event to that shard's stream; this
module only builds keys and arguments and turns answers into bodies or errors. The rules
(which credits a hold takes, what a partial commit gives back, expiry) are in docs/credits.md.

Expiry of a PENDING credit hold: `sweep_once` releases every due hold (credit_expire.lua),
like gateway/sweeper.py does for empenhos, and a commit or cancel that finds its hold overdue
expires it first. Until the sweeper calls `sweep_once`, only that second rule applies.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from typing import Any

import msgspec

from gateway import ids
from gateway.clock import rfc3339
from gateway.core import Gateway
from gateway.credit_schemas import (
    CreditCreate,
    CreditCreated,
    CreditHeld,
    CreditHoldOutcome,
    CreditHoldPart,
    CreditHoldRequest,
    CreditHoldView,
    CreditList,
    CreditUsed,
    CreditView,
    Origin,
)
from gateway.empenhos import REPLAYED, Decision
from gateway.errors import ApiError, ErrorCode
from gateway.http import invalid
from gateway.passwords import digest
from gateway.schemas import CancelRequest, CommitRequest, HistoryEntry

_HOLD_ID = re.compile(r"^C([0-9]{1,4})-([0-9A-Z]{26})$")
#: expiries past this cannot be carried exactly through Lua's JSON (14 significant digits)
_LATEST_EXPIRY = datetime.datetime(2200, 1, 1, tzinfo=datetime.UTC)
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
SWEEP_BATCH = 200


new_credit_id = ids.new_credit_id
new_hold_id = ids.new_credit_hold_id


def hold_shard(hold_id: str, shards: int) -> int | None:
    """The shard a credit hold id names, or None when the id cannot be one of ours."""
    m = _HOLD_ID.match(hold_id)
    if not m:
        return None
    shard = int(m.group(1))
    return shard if shard < shards else None


def _origin(rec: dict[str, Any]) -> Origin:
    origin = Origin(channel=rec["channel"])
    for name in ("store", "terminal", "order"):
        if rec.get(name):
            setattr(origin, name, rec[name])
    return origin


def _check_store(channel: str, store: str | None, where: str) -> None:
    if channel == "STORE" and not store:
        raise invalid(where, f"`{where}` is required when the channel is STORE.")


# --- credits ---------------------------------------------------------------------------------
async def create(gw: Gateway, customer: str, req: CreditCreate, api_key_id: str) -> Decision:
    """Register a credit; the same reference with the same values replays the first answer."""
    o = req.origin
    _check_store(o.channel, o.store, "origin.store")
    expires_ms = ""
    if req.expires_at is not None:
        if req.expires_at >= _LATEST_EXPIRY:
            raise invalid("expires_at", "`expires_at` must be before the year 2200.")
        expires_ms = str(int(req.expires_at.timestamp() * 1000))
    # the values that make a credit: one instant however its zone was written
    fingerprint = hashlib.sha256(
        _encode(["credit", req.type, req.amount, o.channel, o.store, o.terminal, o.order, expires_ms])
    ).hexdigest()
    k = gw.keys
    res = await gw.run(
        "credit_create",
        [k.credits(customer), k.credit_refs(customer), k.credits_open(customer), k.events(k.shard_of(customer))],
        [
            customer,
            new_credit_id(),
            req.reference,
            req.type,
            req.amount,
            o.channel,
            o.store or "",
            o.terminal or "",
            o.order or "",
            expires_ms,
            gw.now_ms(),
            gw.protocol(),
            fingerprint,
            api_key_id,
        ],
    )
    if not res["ok"]:
        if res["code"] == ErrorCode.INVALID_REQUEST:
            raise invalid("expires_at", "`expires_at` must be later than now.")
        raise ApiError(res["code"])
    r = res["r"]
    c = r["credit"]
    body = CreditCreated(
        id=c["id"],
        customer=c["customer"],
        reference=c["ref"],
        type=c["type"],
        amount=c["amount"],
        origin=_origin(c),
        created_at=rfc3339(c["created_at"]),
        protocol=c["protocol"],
    )
    if c["expires_at"]:
        body.expires_at = rfc3339(c["expires_at"])
    return Decision(201, body, bool(r.get("replay")))


def _status(rec: dict[str, Any], now: int) -> str:
    if rec["remaining"] <= 0:
        return "USED"
    if rec["expires_at"] and rec["expires_at"] <= now:
        return "EXPIRED"
    return "ACTIVE"


async def listing(gw: Gateway, customer: str) -> CreditList:
    """Every credit of the customer, in the order they were registered, as Redis has them now."""
    now = gw.now_ms()
    records = sorted(
        (_decode(raw) for raw in (await gw.redis.hgetall(gw.keys.credits(customer))).values()),
        key=lambda rec: rec["seq"],
    )
    views, available = [], 0
    for rec in records:
        status = _status(rec, now)
        if status == "ACTIVE":
            available += rec["remaining"]
        view = CreditView(
            id=rec["id"],
            reference=rec["ref"],
            type=rec["type"],
            amount=rec["amount"],
            remaining=rec["remaining"],
            status=status,
            origin=_origin(rec),
            created_at=rfc3339(rec["created_at"]),
            protocol=rec["protocol"],
        )
        if rec["expires_at"]:
            view.expires_at = rfc3339(rec["expires_at"])
        views.append(view)
    return CreditList(customer=customer, available=available, credits=views)


# --- credit holds ----------------------------------------------------------------------------
def _used(items: Any) -> list[CreditUsed]:
    # Lua's JSON writes an empty list as {}: no credit was used
    return [CreditUsed(i["reference"], i["type"], i["amount"]) for i in items] if isinstance(items, list) else []


async def hold(gw: Gateway, api_key_id: str, idempotency_key: str, req: CreditHoldRequest) -> Decision:
    """Hold `amount` over the customer's credits for an order (credit_hold.lua)."""
    _check_store(req.channel, req.store, "store")
    k, s = gw.keys, gw.settings
    fingerprint = hashlib.sha256(b"credit-hold:" + _encode(req)).hexdigest()
    idem = digest(idempotency_key)[:32]
    # the claim is the empenhos' own: one Idempotency-Key names one request, hold or credit hold
    first = await gw.resp.command(
        "SET", k.idempotency_claim(api_key_id, idem), fingerprint, "NX", "GET", "EX", s.idempotency_ttl_s
    )
    if first is not None and first.decode() != fingerprint:
        raise ApiError(ErrorCode.IDEMPOTENCY_CONFLICT)

    shard = k.shard_of(req.customer)
    now = gw.now_ms()
    hold_id = new_hold_id(shard)
    # index the hold under its order before it exists: a reader skips an id with no hold (a
    # decline, a replay), but never misses a hold
    index = k.order_holds(req.order)
    async with gw.redis.pipeline(transaction=False) as pipe:
        pipe.sadd(index, hold_id)
        pipe.expire(index, s.hold_ttl_s + s.final_empenho_ttl_s)
        await pipe.execute()
    res = await gw.run(
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
            gw.protocol(),
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
    if not res["ok"]:
        raise ApiError(res["code"])
    r = res["r"]
    replayed = bool(r.get("replay"))
    if r["s"] != 201:
        raise ApiError(
            r["error"], available=r.get("available"), protocol=r.get("protocol"), headers=REPLAYED if replayed else None
        )
    body = CreditHeld(
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
    return Decision(201, body, replayed)


async def _locate(gw: Gateway, hold_id: str) -> tuple[int, str]:
    shard = hold_shard(hold_id, gw.settings.shards)
    if shard is None:
        raise ApiError(ErrorCode.UNKNOWN_CREDIT_HOLD)
    customer = await gw.redis.hget(gw.keys.credit_hold(shard, hold_id), "customer")
    if customer is None:
        raise ApiError(ErrorCode.UNKNOWN_CREDIT_HOLD)
    return shard, customer.decode()


def _lifecycle_keys(gw: Gateway, shard: int, hold_id: str, customer: str) -> list[str]:
    k = gw.keys
    return [
        k.credit_hold(shard, hold_id),
        k.credits(customer),
        k.credits_open(customer),
        k.credit_pending(shard),
        k.events(shard),
    ]


def _outcome(res: dict[str, Any]) -> Decision:
    if not res["ok"]:
        raise ApiError(res["code"], **res["x"])
    r = res["r"]
    body = CreditHoldOutcome(
        id=r["id"], status=r["status"], amount=r["amount"], credits=_used(r["credits"]), protocol=r["protocol"]
    )
    return Decision(200, body, bool(r.get("replay")))


async def commit(gw: Gateway, hold_id: str, req: CommitRequest) -> Decision:
    """Post the hold: all of it, or less (the rest goes back to the credits, last-picked first)."""
    shard, customer = await _locate(gw, hold_id)
    res = await gw.run(
        "credit_commit",
        _lifecycle_keys(gw, shard, hold_id, customer),
        [
            hold_id,
            gw.now_ms(),
            gw.protocol(),
            req.coupon,
            "" if req.amount is None else req.amount,
            gw.settings.final_empenho_ttl_s,
            customer,
        ],
    )
    return _outcome(res)


async def cancel(gw: Gateway, hold_id: str, req: CancelRequest) -> Decision:
    """PENDING -> CANCELLED (all back), COMMITTED -> REVERSED (each committed part back)."""
    shard, customer = await _locate(gw, hold_id)
    res = await gw.run(
        "credit_cancel",
        _lifecycle_keys(gw, shard, hold_id, customer),
        [hold_id, gw.now_ms(), gw.protocol(), req.reason or "", gw.settings.final_empenho_ttl_s, customer],
    )
    return _outcome(res)


async def expire(gw: Gateway, shard: int, hold_id: str) -> bool:
    """Release one PENDING credit hold if its time has run out; True when it expired now."""
    customer = await gw.redis.hget(gw.keys.credit_hold(shard, hold_id), "customer")
    if customer is None:  # already gone from Redis: only the index entry is left
        await gw.redis.zrem(gw.keys.credit_pending(shard), hold_id)
        return False
    res = await gw.run(
        "credit_expire",
        _lifecycle_keys(gw, shard, hold_id, customer.decode()),
        [hold_id, gw.now_ms(), gw.protocol(), gw.settings.final_empenho_ttl_s],
    )
    return bool(res["r"]["expired"])


async def sweep_once(gw: Gateway) -> int:
    """Expire every due credit hold in every shard; returns how many expired (the sweeper's hook)."""
    expired = 0
    for shard in range(gw.settings.shards):
        for _ in range(50):  # bounded: a clock moving backwards must not spin here
            due = await gw.redis.zrangebyscore(
                gw.keys.credit_pending(shard), "-inf", gw.now_ms(), start=0, num=SWEEP_BATCH
            )
            for raw in due:
                expired += await expire(gw, shard, raw.decode())
            if len(due) < SWEEP_BATCH:
                break
    return expired


# --- reading a hold --------------------------------------------------------------------------
async def get(gw: Gateway, hold_id: str) -> CreditHoldView:
    shard = hold_shard(hold_id, gw.settings.shards)
    if shard is None:
        raise ApiError(ErrorCode.UNKNOWN_CREDIT_HOLD)
    raw = await gw.redis.hgetall(gw.keys.credit_hold(shard, hold_id))
    if not raw:  # a final hold leaves Redis after a while; the ledger keeps it
        return await _stored_hold(gw, hold_id)
    h = {key.decode(): value.decode() for key, value in raw.items()}
    parts = _decode(h["parts"])
    credits = await _credit_records(gw, h["customer"], [p["c"] for p in parts])
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


async def _credit_records(gw: Gateway, customer: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    raw = await gw.redis.hmget(gw.keys.credits(customer), ids)
    return {i: _decode(r) for i, r in zip(ids, raw, strict=True) if r is not None}


HOLD_SQL = "SELECT * FROM credit_holds WHERE id = $1"
HOLD_PARTS_SQL = """SELECT p.credit_id, p.held, p.committed, c.reference, c.type
                    FROM credit_hold_parts p JOIN credits c ON c.id = p.credit_id
                    WHERE p.hold_id = $1 ORDER BY p.seq"""
HOLD_HISTORY_SQL = "SELECT status, at, protocol, amount FROM credit_hold_history WHERE hold_id = $1 ORDER BY seq"


def _ts(value: datetime.datetime) -> str:
    return rfc3339(int(value.timestamp() * 1000))


async def _stored_hold(gw: Gateway, hold_id: str) -> CreditHoldView:
    rows = await gw.ledger.fetch(HOLD_SQL, hold_id)
    if not rows:
        raise ApiError(ErrorCode.UNKNOWN_CREDIT_HOLD)
    h = rows[0]
    parts = await gw.ledger.fetch(HOLD_PARTS_SQL, hold_id)
    history = await gw.ledger.fetch(HOLD_HISTORY_SQL, hold_id)
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
        created_at=_ts(h["created_at"]),
        expires_at=_ts(h["expires_at"]),
        protocol=h["protocol"],
        history=[HistoryEntry(e["status"], _ts(e["at"]), e["protocol"], e["amount"]) for e in history],
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
