"""Empenhos (authorization holds): place, commit (post), cancel (void or reverse), expire, read.

Each operation is one Lua script; this module only builds its keys and arguments and turns
its answer into the contract's body or error.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.clock import LOCAL, rfc3339
from gateway.core import Gateway
from gateway.errors import ApiError, ErrorCode
from gateway.ids import empenho_shard, new_empenho_id
from gateway.passwords import digest
from gateway.schemas import (
    CancelRequest,
    CommitRequest,
    EmpenhoHeld,
    EmpenhoOutcome,
    EmpenhoRequest,
    EmpenhoView,
    HistoryEntry,
    Vehicle,
)

REPLAYED = {"Idempotent-Replayed": "true"}


@dataclass(frozen=True)
class Decision:
    status: int
    body: Any
    replayed: bool


_window_cache: tuple[int, tuple[str, str]] = (-1, ("", ""))


def _window_keys(now_ms: int) -> tuple[str, str]:
    """The local day and month of a hold (limit windows), computed once a minute."""
    global _window_cache
    minute = now_ms // 60_000
    if _window_cache[0] != minute:
        local = datetime.datetime.fromtimestamp(now_ms / 1000, LOCAL)
        _window_cache = (minute, (local.strftime("%Y%m%d"), local.strftime("%Y%m")))
    return _window_cache[1]


def _decline(r: dict[str, Any], replayed: bool) -> ApiError:
    return ApiError(
        r["error"],
        available=r.get("available"),
        scope=r.get("scope"),
        remaining=r.get("remaining"),
        protocol=r.get("protocol"),
        headers=REPLAYED if replayed else None,
    )


async def hold(gw: Gateway, api_key_id: str, idempotency_key: str, req: EmpenhoRequest) -> Decision:
    k, s = gw.keys, gw.settings
    fingerprint = hashlib.sha256(msgspec.json.encode(req)).hexdigest()
    idem = digest(idempotency_key)[:32]
    # An Idempotency-Key belongs to the first request that used it, whichever convênio (and
    # so whichever shard) that request named; the record itself lives beside the hold.
    first = await gw.resp.command(
        "SET", k.idempotency_claim(api_key_id, idem), fingerprint, "NX", "GET", "EX", s.idempotency_ttl_s
    )
    if first is not None and first.decode() != fingerprint:
        raise ApiError(ErrorCode.IDEMPOTENCY_CONFLICT)

    shard = k.shard_of(req.convenio)
    now = gw.now_ms()
    eid = new_empenho_id(shard)
    vehicle = req.vehicle
    plate = vehicle.plate.upper() if vehicle else ""
    km = "" if vehicle is None or vehicle.odometer_km is None else str(vehicle.odometer_km)
    res = await gw.run(
        "reserve",
        [
            k.convenio(req.convenio),
            k.participant(req.convenio, req.participant),
            k.vehicles(req.convenio, req.participant),
            k.proof(req.convenio, digest(req.proof) if req.proof else "none"),
            k.idempotency(req.convenio, api_key_id, idem),
            k.empenho(shard, eid),
            k.empenho_history(shard, eid),
            k.pending(shard),
            k.events(shard),
        ],
        [
            req.convenio,
            req.participant,
            req.amount,
            now,
            now + s.hold_ttl_s * 1000,
            eid,
            gw.protocol(),
            fingerprint,
            s.idempotency_ttl_s,
            req.terminal,
            req.store,
            req.sale,
            plate,
            km,
            api_key_id,
            "1" if req.proof else "0",
            idem,
            req.order or "",
            *_window_keys(now),
        ],
    )
    if not res["ok"]:
        raise ApiError(res["code"])
    r = res["r"]
    replayed = bool(r.get("replay"))
    if r["s"] != 201:
        raise _decline(r, replayed)
    body = EmpenhoHeld(
        id=r["id"],
        status=r["status"],
        amount=r["amount"],
        available=r["available"],
        expires_at=rfc3339(r["expires_at"]),
        protocol=r["protocol"],
    )
    return Decision(201, body, replayed)


async def _locate(gw: Gateway, empenho_id: str) -> tuple[int, str, str]:
    shard = empenho_shard(empenho_id, gw.settings.shards)
    if shard is None:
        raise ApiError(ErrorCode.UNKNOWN_EMPENHO)
    conv, part = await gw.redis.hmget(gw.keys.empenho(shard, empenho_id), "convenio", "participant")
    if conv is None:
        raise ApiError(ErrorCode.UNKNOWN_EMPENHO)
    return shard, conv.decode(), part.decode()


def _outcome(res: dict[str, Any]) -> Decision:
    if not res["ok"]:
        raise ApiError(res["code"], **res["x"])
    r = res["r"]
    body = EmpenhoOutcome(
        id=r["id"], status=r["status"], amount=r["amount"], balance=r["balance"], protocol=r["protocol"]
    )
    return Decision(200, body, bool(r.get("replay")))


async def commit(gw: Gateway, empenho_id: str, req: CommitRequest) -> Decision:
    shard, conv, part = await _locate(gw, empenho_id)
    k = gw.keys
    res = await gw.run(
        "commit",
        [
            k.empenho(shard, empenho_id),
            k.empenho_history(shard, empenho_id),
            k.convenio(conv),
            k.participant(conv, part),
            k.vehicles(conv, part),
            k.pending(shard),
            k.events(shard),
        ],
        [
            empenho_id,
            gw.now_ms(),
            gw.protocol(),
            req.coupon,
            "" if req.amount is None else req.amount,
            gw.settings.final_empenho_ttl_s,
            conv,
            part,
        ],
    )
    return _outcome(res)


def _lifecycle_keys(gw: Gateway, shard: int, empenho_id: str, conv: str, part: str) -> list[str]:
    k = gw.keys
    return [
        k.empenho(shard, empenho_id),
        k.empenho_history(shard, empenho_id),
        k.convenio(conv),
        k.participant(conv, part),
        k.pending(shard),
        k.events(shard),
    ]


async def cancel(gw: Gateway, empenho_id: str, req: CancelRequest, keep_windows: bool = False) -> Decision:
    """Cancel (PENDING) or reverse (COMMITTED); `keep_windows`: a release by order processing
    (alterasaldo off), a sale made elsewhere that keeps its place in the limit windows."""
    shard, conv, part = await _locate(gw, empenho_id)
    res = await gw.run(
        "cancel",
        _lifecycle_keys(gw, shard, empenho_id, conv, part),
        [
            empenho_id,
            gw.now_ms(),
            gw.protocol(),
            req.reason or "",
            gw.settings.final_empenho_ttl_s,
            conv,
            part,
            "1" if keep_windows else "0",
        ],
    )
    return _outcome(res)


async def expire(gw: Gateway, shard: int, empenho_id: str) -> bool:
    """Release one PENDING empenho if its time has run out; True when it expired now."""
    conv, part = await gw.redis.hmget(gw.keys.empenho(shard, empenho_id), "convenio", "participant")
    if conv is None:  # already gone from Redis: only the index entry is left
        await gw.redis.zrem(gw.keys.pending(shard), empenho_id)
        return False
    res = await gw.run(
        "expire",
        _lifecycle_keys(gw, shard, empenho_id, conv.decode(), part.decode()),
        [empenho_id, gw.now_ms(), gw.protocol(), gw.settings.final_empenho_ttl_s],
    )
    return bool(res["r"]["expired"])


async def get(gw: Gateway, empenho_id: str) -> EmpenhoView:
    shard = empenho_shard(empenho_id, gw.settings.shards)
    if shard is None:
        raise ApiError(ErrorCode.UNKNOWN_EMPENHO)
    async with gw.redis.pipeline(transaction=True) as pipe:
        pipe.hgetall(gw.keys.empenho(shard, empenho_id))
        pipe.lrange(gw.keys.empenho_history(shard, empenho_id), 0, -1)
        raw, hist = await pipe.execute()
    if not raw:  # a final empenho leaves Redis after a while; the ledger keeps it
        return await gw.ledger.empenho(empenho_id)
    e = {key.decode(): value.decode() for key, value in raw.items()}
    history = []
    for item in hist:
        h = msgspec.json.decode(item)
        history.append(
            HistoryEntry(status=h["status"], at=rfc3339(h["at"]), protocol=h["protocol"], amount=h["amount"])
        )
    view = EmpenhoView(
        id=e["id"],
        convenio=e["convenio"],
        participant=e["participant"],
        status=e["status"],
        amount=int(e["amount"]),
        terminal=e["terminal"],
        store=e["store"],
        sale=e["sale"],
        created_at=rfc3339(int(e["created_at"])),
        expires_at=rfc3339(int(e["expires_at"])),
        protocol=e["protocol"],
        history=history,
    )
    if "committed_amount" in e:
        view.committed_amount = int(e["committed_amount"])
        view.coupon = e["coupon"]
    if e.get("plate"):
        km = e.get("odometer_km")
        view.vehicle = Vehicle(plate=e["plate"], odometer_km=int(km) if km else None)
    if e.get("cancel_reason"):
        view.cancel_reason = e["cancel_reason"]
    if e.get("order"):
        view.order = e["order"]
    return view
