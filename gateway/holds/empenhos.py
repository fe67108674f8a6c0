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
    ReturnEntry,
    Vehicle,
)
from gateway.platform.clock import LOCAL, rfc3339, to_ms
from gateway.platform.digests import digest
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.ids import empenho_shard, new_empenho_id
from gateway.platform.services import Services

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
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
    svc: Services, req: EmpenhoRequest, api_key_id: str, idem: str, fingerprint: str, now: int, claim: bool = False
) -> tuple[list[str], list[Any]]:
    """The keys and arguments of empenho_hold.lua (its header says what each is) for one request,
    under a new empenho id: the one place that lays them out, for the API and the bench alike.
    `claim`: the script claims the Idempotency-Key too (one server only)."""
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
        k.idempotency_claim(api_key_id, idem) if claim else k.idempotency(req.convenio, api_key_id, idem),
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
        "1" if claim else "0",
    ]
    return keys, args


async def hold(svc: Services, api_key_id: str, idempotency_key: str, req: EmpenhoRequest) -> Answer:
    fingerprint = lifecycle.fingerprint(b"", req)
    if svc.cluster:  # the claim lies in no shard's slot: its own call first
        idem = await lifecycle.claim(svc, api_key_id, idempotency_key, fingerprint)
    else:  # one round trip: the script makes the claim itself
        idem = lifecycle.key_digest(idempotency_key)
    keys, args = hold_call(svc, req, api_key_id, idem, fingerprint, svc.now_ms(), claim=not svc.cluster)
    res = await svc.run("empenho_hold", keys, args)
    return lifecycle.placed(res, _held)


async def commit(svc: Services, empenho_id: str, req: CommitRequest, scope: tuple[str, str] = ("", "")) -> Answer:
    """Post the hold; `scope`: the store (and terminal) a scoped key acts for (gateway/stores/scope.py)."""
    shard, (conv, part) = await lifecycle.locate(svc, EMPENHO, empenho_id)
    keys, args = commit_call(svc, shard, empenho_id, conv, part, req, scope)
    res = await svc.run("empenho_commit", keys, args)
    return lifecycle.settled(res, _outcome)


def commit_call(
    svc: Services,
    shard: int,
    empenho_id: str,
    convenio: str,
    participant: str,
    req: CommitRequest,
    scope: tuple[str, str] = ("", ""),
) -> tuple[list[str], list[Any]]:
    """The keys and arguments of empenho_commit.lua for one empenho (the API's and the bench's)."""
    k = svc.keys
    keys = [
        k.empenho(shard, empenho_id),
        k.empenho_history(shard, empenho_id),
        k.convenio(convenio),
        k.participant(convenio, participant),
        k.vehicles(convenio, participant),
        k.pending(shard),
        k.events(shard),
    ]
    args: list[Any] = [
        empenho_id,
        svc.now_ms(),
        svc.protocol(),
        req.coupon,
        "" if req.amount is None else req.amount,
        svc.settings.final_empenho_ttl_s,
        convenio,
        participant,
        *scope,
    ]
    return keys, args


async def cancel(
    svc: Services,
    empenho_id: str,
    req: CancelRequest,
    keep_windows: bool = False,
    scope: tuple[str, str] = ("", ""),
) -> Answer:
    """Cancel (PENDING) or reverse (COMMITTED); `keep_windows`: a release by order processing
    (update_balance off), a sale made elsewhere that keeps its place in the limit windows."""
    # a sale Redis forgot is brought back from the ledger: a reversal works at any time
    shard, (conv, part) = await lifecycle.locate(svc, EMPENHO, empenho_id, lambda: stored_record(svc, empenho_id))
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
            *scope,
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
    if raw:
        e = {key.decode(): value.decode() for key, value in raw.items()}
        return _view(e, [_decode(item) for item in hist])
    # a final empenho leaves Redis after a while; the ledger keeps it
    stored = await stored_record(svc, empenho_id)
    if stored is None:
        raise ApiError(ErrorCode.UNKNOWN_EMPENHO)
    fields, history = stored
    return _view({k: str(v) for k, v in fields.items()}, [_decode(h) for h in history])


def _view(e: dict[str, str], history: list[dict[str, Any]]) -> EmpenhoView:
    """An empenho from its record as Redis keeps it (or as the ledger rebuilds it)."""
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
        history=[HistoryEntry(h["status"], rfc3339(h["at"]), h["protocol"], h["amount"]) for h in history],
    )
    if e.get("committed_amount"):
        committed, returned = int(e["committed_amount"]), int(e.get("returned") or 0)
        view.committed_amount = committed
        view.coupon = e["coupon"]
        view.returned = returned
        view.returnable = committed - returned if e["status"] == "COMMITTED" else 0
        view.returns = [_return(r) for r in _list(_decode(e["returns"]) if e.get("returns") else [])]
    if e.get("plate"):
        km = e.get("odometer_km")
        view.vehicle = Vehicle(plate=e["plate"], odometer_km=int(km) if km else None)
    if e.get("cancel_reason"):
        view.cancel_reason = e["cancel_reason"]
    if e.get("order"):
        view.order = e["order"]
    return view


def _return(r: dict[str, Any]) -> ReturnEntry:
    entry = ReturnEntry(
        id=r["id"],
        amount=r["amount"],
        refund=r["refund"],
        store=r["store"],
        terminal=r["terminal"],
        at=rfc3339(r["at"]),
        protocol=r["protocol"],
    )
    if r.get("reason"):
        entry.reason = r["reason"]
    if r["refund"] == "CREDIT":
        entry.credit_reference = refund_reference(r["id"])
    return entry


def refund_reference(return_id: str) -> str:
    """The reference of the DEVOLUCAO credit a return refunded as credit became."""
    return f"DEV-{return_id}"


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []  # Lua's JSON writes an empty list as {}


# -- the ledger's record of an empenho, shaped as Redis keeps it -----------------------------------
STORED = "SELECT * FROM empenhos WHERE id = $1"
STORED_HISTORY = "SELECT status, at, protocol, amount FROM empenho_history WHERE empenho_id = $1 ORDER BY seq"
STORED_RETURNS = "SELECT * FROM empenho_returns WHERE empenho_id = $1 ORDER BY at, id"


async def stored_record(svc: Services, empenho_id: str) -> tuple[dict[str, Any], list[str]] | None:
    """The empenho's Redis record and history entries, from the ledger (Postgres down:
    LEDGER_UNAVAILABLE); None when the ledger does not know it either."""
    rows = await svc.ledger.fetch(STORED, empenho_id)
    if not rows:
        return None
    history = await svc.ledger.fetch(STORED_HISTORY, empenho_id)
    returns = await svc.ledger.fetch(STORED_RETURNS, empenho_id)
    return record_of(rows[0], history, returns)


def record_of(e: Any, history: list[Any], returns: list[Any]) -> tuple[dict[str, Any], list[str]]:
    """An empenho's Redis hash fields and history list (JSON entries) from its ledger rows: what
    `convenio rebuild` puts back, and what a return of a sale Redis forgot brings back."""
    fields: dict[str, Any] = {
        "id": e["id"],
        "convenio": e["convenio"],
        "participant": e["participant"],
        "amount": e["amount"],
        "status": e["status"],
        "pool": e["pool"],
        "created_at": to_ms(e["created_at"]),
        "expires_at": to_ms(e["expires_at"]),
        "terminal": e["terminal"],
        "store": e["store"],
        "sale": e["sale"],
        "plate": e["plate"],
        "odometer_km": "" if e["odometer_km"] is None else e["odometer_km"],
        "protocol": e["protocol"],
        "order": e["order_ref"] or "",
    }
    if e["committed_amount"] is not None:
        fields.update(committed_amount=e["committed_amount"], coupon=e["coupon"], commit_result=e["commit_result"])
        fields["returned"] = e["returned"]
        fields["returns"] = _encode(
            [
                {
                    "id": r["id"],
                    "amount": r["amount"],
                    "at": to_ms(r["at"]),
                    "refund": r["refund"],
                    "store": r["store"],
                    "terminal": r["terminal"],
                    "reason": r["reason"] or "",
                    "protocol": r["protocol"],
                }
                for r in returns
            ]
        ).decode()
    if e["ended_at"] is not None:
        fields["ended_at"] = to_ms(e["ended_at"])
    if e["cancel_result"] is not None:
        fields.update(cancel_reason=e["cancel_reason"] or "", cancel_result=e["cancel_result"])
    if e["windows"]:
        fields.update(_decode(e["windows"]))
    entries = [
        _encode(
            {"status": h["status"], "at": to_ms(h["at"]), "protocol": h["protocol"], "amount": h["amount"]}
        ).decode()
        for h in history
    ]
    return fields, entries
