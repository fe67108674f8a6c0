"""Empenhos (authorization holds on a convênio's balance): place, commit (post), cancel (void or
reverse), read. Each operation is one Lua script (reserve, commit, cancel; expiry is the
sweeper's); this module builds its keys and arguments, and gateway/holds/lifecycle.py turns its
answer into the contract's body or error.
"""

from __future__ import annotations

import datetime
from typing import Any

import msgspec

from gateway.holds import lifecycle
from gateway.holds.lifecycle import EMPENHO, Answer
from gateway.holds.schemas import (
    CancelRequest,
    CommitRequest,
    EmpenhoHeld,
    EmpenhoOutcome,
    EmpenhoRequest,
    EmpenhoView,
    HistoryEntry,
    Vehicle,
)
from gateway.platform.clock import LOCAL, iso, rfc3339
from gateway.platform.digests import digest
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.ids import empenho_shard, new_empenho_id
from gateway.platform.services import Services

_window_cache: tuple[int, tuple[str, str]] = (-1, ("", ""))


def _window_keys(now_ms: int) -> tuple[str, str]:
    """The local day and month a hold counts in (its limit windows), computed once a minute."""
    global _window_cache
    minute = now_ms // 60_000
    if _window_cache[0] != minute:
        local = datetime.datetime.fromtimestamp(now_ms / 1000, LOCAL)
        _window_cache = (minute, (local.strftime("%Y%m%d"), local.strftime("%Y%m")))
    return _window_cache[1]


def _held(r: dict) -> EmpenhoHeld:
    return EmpenhoHeld(
        id=r["id"],
        status=r["status"],
        amount=r["amount"],
        available=r["available"],
        expires_at=rfc3339(r["expires_at"]),
        protocol=r["protocol"],
    )


def _outcome(r: dict) -> EmpenhoOutcome:
    return EmpenhoOutcome(
        id=r["id"], status=r["status"], amount=r["amount"], balance=r["balance"], protocol=r["protocol"]
    )


def hold_call(
    svc: Services, req: EmpenhoRequest, api_key_id: str, idem: str, fingerprint: str, now: int
) -> tuple[list[str], list[Any]]:
    """The keys and arguments of empenho_hold.lua (its header says what each is) for one request,
    under a new empenho id: the one place that lays them out, for the API and the bench alike."""
    k, s = svc.keys, svc.settings
    shard = k.shard_of(req.convenio)
    eid = new_empenho_id(shard)
    vehicle = req.vehicle
    plate = vehicle.plate.upper() if vehicle else ""
    km = "" if vehicle is None or vehicle.odometer_km is None else str(vehicle.odometer_km)
    keys = [
        k.convenio(req.convenio),
        k.participant(req.convenio, req.participant),
        k.vehicles(req.convenio, req.participant),
        k.proof(req.convenio, digest(req.proof) if req.proof else "none"),
        k.idempotency(req.convenio, api_key_id, idem),
        k.empenho(shard, eid),
        k.empenho_history(shard, eid),
        k.pending(shard),
        k.events(shard),
    ]
    args: list[Any] = [
        req.convenio,
        req.participant,
        req.amount,
        now,
        now + s.hold_ttl_s * 1000,
        eid,
        svc.protocol(),
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
    ]
    return keys, args


async def hold(svc: Services, api_key_id: str, idempotency_key: str, req: EmpenhoRequest) -> Answer:
    fingerprint = lifecycle.fingerprint(b"", req)
    idem = await lifecycle.claim(svc, api_key_id, idempotency_key, fingerprint)
    keys, args = hold_call(svc, req, api_key_id, idem, fingerprint, svc.now_ms())
    res = await svc.run("empenho_hold", keys, args)
    return lifecycle.placed(res, _held)


async def commit(svc: Services, empenho_id: str, req: CommitRequest) -> Answer:
    shard, (conv, part) = await lifecycle.locate(svc, EMPENHO, empenho_id)
    k = svc.keys
    res = await svc.run(
        "empenho_commit",
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
            svc.now_ms(),
            svc.protocol(),
            req.coupon,
            "" if req.amount is None else req.amount,
            svc.settings.final_empenho_ttl_s,
            conv,
            part,
        ],
    )
    return lifecycle.settled(res, _outcome)


async def cancel(svc: Services, empenho_id: str, req: CancelRequest, keep_windows: bool = False) -> Answer:
    """Cancel (PENDING) or reverse (COMMITTED); `keep_windows`: a release by order processing
    (update_balance off), a sale made elsewhere that keeps its place in the limit windows."""
    shard, (conv, part) = await lifecycle.locate(svc, EMPENHO, empenho_id)
    res = await svc.run(
        "empenho_cancel",
        EMPENHO.lifecycle_keys(svc.keys, shard, empenho_id, (conv, part)),
        [
            empenho_id,
            svc.now_ms(),
            svc.protocol(),
            req.reason or "",
            svc.settings.final_empenho_ttl_s,
            conv,
            part,
            "1" if keep_windows else "0",
        ],
    )
    return lifecycle.settled(res, _outcome)


async def get(svc: Services, empenho_id: str) -> EmpenhoView:
    shard = empenho_shard(empenho_id, svc.settings.shards)
    if shard is None:
        raise ApiError(ErrorCode.UNKNOWN_EMPENHO)
    async with svc.redis.pipeline(transaction=True) as pipe:
        pipe.hgetall(svc.keys.empenho(shard, empenho_id))
        pipe.lrange(svc.keys.empenho_history(shard, empenho_id), 0, -1)
        raw, hist = await pipe.execute()
    if not raw:  # a final empenho leaves Redis after a while; the ledger keeps it
        return await _stored(svc, empenho_id)
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


STORED = "SELECT * FROM empenhos WHERE id = $1"
STORED_HISTORY = "SELECT status, at, protocol, amount FROM empenho_history WHERE empenho_id = $1 ORDER BY seq"


async def _stored(svc: Services, empenho_id: str) -> EmpenhoView:
    """An empenho as the ledger keeps it (Postgres down: LEDGER_UNAVAILABLE)."""
    rows = await svc.ledger.fetch(STORED, empenho_id)
    if not rows:
        raise ApiError(ErrorCode.UNKNOWN_EMPENHO)
    e = rows[0]
    history = await svc.ledger.fetch(STORED_HISTORY, empenho_id)
    view = EmpenhoView(
        id=e["id"],
        convenio=e["convenio"],
        participant=e["participant"],
        status=e["status"],
        amount=e["amount"],
        terminal=e["terminal"],
        store=e["store"],
        sale=e["sale"],
        created_at=iso(e["created_at"]),
        expires_at=iso(e["expires_at"]),
        protocol=e["protocol"],
        history=[HistoryEntry(h["status"], iso(h["at"]), h["protocol"], h["amount"]) for h in history],
    )
    if e["committed_amount"] is not None:
        view.committed_amount = e["committed_amount"]
        view.coupon = e["coupon"]
    if e["plate"]:
        view.vehicle = Vehicle(plate=e["plate"], odometer_km=e["odometer_km"])
    if e["cancel_reason"]:
        view.cancel_reason = e["cancel_reason"]
    if e["order_ref"]:
        view.order = e["order_ref"]
    return view
