"""Credits in a customer's current account: registered under a reference that names each one for
good, listed with what each has remaining. Orders pay with them through credit holds
(gateway/credits/holds.py); the rules are in docs/credits.md.

Each write is one Lua script (credit_create.lua) over the customer's keys, all under the hash tag
of `keys.shard_of(customer)`, appending its event to that shard's stream.
"""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

import msgspec

from gateway.credits.schemas import CreditCreate, CreditCreated, CreditList, CreditView, Origin
from gateway.holds.lifecycle import Answer
from gateway.platform.clock import rfc3339, to_ms
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.http.params import invalid
from gateway.platform.ids import new_credit_id
from gateway.platform.services import Services

#: expiries past this cannot be carried exactly through Lua's JSON (14 significant digits)
_LATEST_EXPIRY = datetime.datetime(2200, 1, 1, tzinfo=datetime.UTC)
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def origin(rec: dict[str, Any]) -> Origin:
    """Where a credit came from, from its record."""
    o = Origin(channel=rec["channel"])
    for name in ("store", "terminal", "order"):
        if rec.get(name):
            setattr(o, name, rec[name])
    return o


def check_store(channel: str, store: str | None, where: str) -> None:
    if channel == "STORE" and not store:
        raise invalid(where, f"`{where}` is required when the channel is STORE.")


# --- credits ---------------------------------------------------------------------------------
async def create(
    svc: Services, customer: str, req: CreditCreate, api_key_id: str, refunds: tuple[str, str] = ("", "")
) -> Answer:
    """Register a credit; the same reference with the same values replays the first answer.
    `refunds`: the return and the sale a DEVOLUCAO credit refunds, for finance's lines."""
    o = req.origin
    check_store(o.channel, o.store, "origin.store")
    expires_ms = ""
    if req.expires_at is not None:
        if req.expires_at >= _LATEST_EXPIRY:
            raise invalid("expires_at", "`expires_at` must be before the year 2200.")
        expires_ms = str(to_ms(req.expires_at))
    # the values that make a credit: one instant however its zone was written
    fingerprint = hashlib.sha256(
        _encode(["credit", req.type, req.amount, o.channel, o.store, o.terminal, o.order, expires_ms])
    ).hexdigest()
    k = svc.keys
    res = await svc.run(
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
            svc.now_ms(),
            svc.protocol(),
            fingerprint,
            api_key_id,
            *refunds,
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
        origin=origin(c),
        created_at=rfc3339(c["created_at"]),
        protocol=c["protocol"],
    )
    if c["expires_at"]:
        body.expires_at = rfc3339(c["expires_at"])
    return Answer(201, body, bool(r.get("replay")))


def _status(rec: dict[str, Any], now: int) -> str:
    if rec["remaining"] <= 0:
        return "USED"
    if rec["expires_at"] and rec["expires_at"] <= now:
        return "EXPIRED"
    return "ACTIVE"


async def listing(svc: Services, customer: str) -> CreditList:
    """Every credit of the customer, in the order they were registered, as Redis has them now."""
    now = svc.now_ms()
    records = sorted(
        (_decode(raw) for raw in (await svc.redis.hgetall(svc.keys.credits(customer))).values()),
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
            origin=origin(rec),
            created_at=rfc3339(rec["created_at"]),
            protocol=rec["protocol"],
        )
        if rec["expires_at"]:
            view.expires_at = rfc3339(rec["expires_at"])
        views.append(view)
    return CreditList(customer=customer, available=available, credits=views)
