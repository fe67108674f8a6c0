"""Back-office registry: convênios, participants and their vehicles.

Writes go through the registry Lua scripts (which enforce the allocation rule and move
balances), reads come straight from the hashes. Values cross into Lua as strings.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.clock import rfc3339
from gateway.core import Gateway
from gateway.errors import ApiError, ErrorCode
from gateway.schemas import (
    Billing,
    ConvenioCreate,
    ConvenioUpdate,
    ConvenioView,
    ParticipantCreate,
    ParticipantList,
    ParticipantUpdate,
    ParticipantView,
    Rollover,
    VehicleList,
    VehicleSave,
    VehicleView,
    Windows,
)


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _convenio_fields(body: ConvenioCreate | ConvenioUpdate) -> dict[str, str]:
    f: dict[str, str] = {}
    if body.name is not None:
        f["name"] = body.name
    if body.total_limit is not None:
        f["total_limit"] = str(body.total_limit)
    if body.tolerance is not None:
        f["tolerance"] = str(body.tolerance)
    if body.shared is not None:
        f["shared"] = _flag(body.shared)
    if body.rollover is not None:
        f["rollover_policy"] = body.rollover.policy
        f["rollover_day"] = str(body.rollover.day or "")
    if body.billing is not None:
        f["billing_automatic"] = _flag(body.billing.automatic)
        f["billing_period"] = body.billing.period
        f["billing_in_participant_name"] = _flag(body.billing.in_participant_name)
        f["payment_method"] = body.billing.payment_method
        f["billing_due_days"] = str(body.billing.due_days)
        f["billing_block_after_days"] = str(body.billing.block_after_days)
    if body.requires_vehicle is not None:
        f["requires_vehicle"] = _flag(body.requires_vehicle)
    if body.status is not None:
        f["status"] = body.status
    if body.windows is not None:
        f.update(_window_fields(body.windows))
    return f


def _window_fields(w: Windows) -> dict[str, str]:
    """'' means no cap (reserve.lua reads it as nil)."""
    return {
        "w_order": "" if w.order_max is None else str(w.order_max),
        "w_day": "" if w.daily_max is None else str(w.daily_max),
        "w_month": "" if w.monthly_max is None else str(w.monthly_max),
    }


def _windows_view(r: dict[str, str]) -> Windows:
    def cap(name: str) -> int | None:
        v = r.get(name) or ""
        return int(v) if v else None

    return Windows(order_max=cap("w_order"), daily_max=cap("w_day"), monthly_max=cap("w_month"))


def _convenio_view(r: dict[str, str]) -> ConvenioView:
    day = r.get("rollover_day", "")
    return ConvenioView(
        code=r["code"],
        name=r["name"],
        total_limit=int(r["total_limit"]),
        tolerance=int(r.get("tolerance", 0)),
        shared=r.get("shared") == "1",
        rollover=Rollover(policy=r.get("rollover_policy", "MONTHLY"), day=int(day) if day else None),
        billing=Billing(
            automatic=r.get("billing_automatic") == "1",
            period=r.get("billing_period", "MONTHLY"),
            in_participant_name=r.get("billing_in_participant_name") == "1",
            payment_method=r.get("payment_method", "BOLETO"),
            due_days=int(r.get("billing_due_days") or 10),
            block_after_days=int(r.get("billing_block_after_days") or 5),
        ),
        requires_vehicle=r.get("requires_vehicle") == "1",
        status=r["status"],
        windows=_windows_view(r),
        allocated=int(r.get("allocated", 0)),
        balance=int(r.get("balance", 0)),
        reserved=int(r.get("reserved", 0)),
        created_at=rfc3339(int(r["created_at"])),
        updated_at=rfc3339(int(r["updated_at"])),
    )


def _check(res: dict[str, Any]) -> dict[str, Any]:
    if not res["ok"]:
        raise ApiError(res["code"], **res["x"])
    return res["r"]


async def save_convenio(
    gw: Gateway, code: str, body: ConvenioCreate | ConvenioUpdate, by: str = "", reason: str | None = None
) -> ConvenioView:
    k = gw.keys
    create = isinstance(body, ConvenioCreate)
    # a monthly rollover always has its day; the seed's default is the 1st
    if body.rollover is not None and body.rollover.policy == "MONTHLY" and body.rollover.day is None:
        body = msgspec.structs.replace(body, rollover=Rollover(policy="MONTHLY", day=1))
    res = await gw.run(
        "convenio_save",
        [k.convenio(code), k.members(code), k.events(k.shard_of(code))],
        [
            "create" if create else "update",
            gw.now_ms(),
            gw.protocol(),
            code,
            msgspec.json.encode(_convenio_fields(body)),
            by,
            reason or getattr(body, "reason", None) or "",
        ],
    )
    return _convenio_view(_check(res))


async def get_convenio(gw: Gateway, code: str) -> ConvenioView:
    raw = await gw.redis.hgetall(gw.keys.convenio(code))
    if not raw:
        raise ApiError(ErrorCode.UNKNOWN_CONVENIO)
    return _convenio_view({k.decode(): v.decode() for k, v in raw.items()})


def _participant_view(convenio: str, code: str, r: dict[str, str]) -> ParticipantView:
    return ParticipantView(
        convenio=convenio,
        code=code,
        name=r.get("name", ""),
        document=r.get("document", ""),
        limit=int(r.get("limit", 0)),
        balance=int(r.get("balance", 0)),
        reserved=int(r.get("reserved", 0)),
        status=r["status"],
        password_set=bool(r.get("pw_changed_at") or r.get("pw_hash")),
        windows=_windows_view(r),
        created_at=rfc3339(int(r["created_at"])),
        updated_at=rfc3339(int(r["updated_at"])),
    )


async def save_participant(
    gw: Gateway,
    convenio: str,
    code: str,
    body: ParticipantCreate | ParticipantUpdate,
    by: str = "",
    reason: str | None = None,
) -> ParticipantView:
    """Create or update a participant; `by` (who) and the body's or the caller's reason (why)
    go into the event, for the change history."""
    k = gw.keys
    create = isinstance(body, ParticipantCreate)
    f: dict[str, str] = {}
    for name in ("name", "document", "status"):
        value = getattr(body, name)
        if value is not None:
            f[name] = value
    if body.limit is not None:
        f["limit"] = str(body.limit)
    if body.windows is not None:
        f.update(_window_fields(body.windows))
    if body.password is not None:
        f["pw_hash"] = await gw.passwords.hash(body.password)
    res = await gw.run(
        "participant_save",
        [k.convenio(convenio), k.participant(convenio, code), k.members(convenio), k.events(k.shard_of(convenio))],
        [
            "create" if create else "update",
            gw.now_ms(),
            gw.protocol(),
            convenio,
            code,
            msgspec.json.encode(f),
            by,
            reason or getattr(body, "reason", None) or "",
        ],
    )
    record = _check(res)
    # The cross-convênio index is a separate key (another hash slot); SADD is idempotent, and
    # readers skip entries whose participant is gone, so a crash between the two is harmless.
    await gw.run("pconv_add", [k.participant_convenios(code)], [code, convenio])
    return _participant_view(convenio, code, record)


async def get_participant(gw: Gateway, convenio: str, code: str) -> ParticipantView:
    raw = await gw.redis.hgetall(gw.keys.participant(convenio, code))
    if not raw:
        if not await gw.redis.exists(gw.keys.convenio(convenio)):
            raise ApiError(ErrorCode.UNKNOWN_CONVENIO)
        raise ApiError(ErrorCode.UNKNOWN_PARTICIPANT)
    return _participant_view(convenio, code, {k.decode(): v.decode() for k, v in raw.items()})


async def list_participants(gw: Gateway, convenio: str, after: str, limit: int) -> ParticipantList:
    if not await gw.redis.exists(gw.keys.convenio(convenio)):
        raise ApiError(ErrorCode.UNKNOWN_CONVENIO)
    codes = sorted(c.decode() for c in await gw.redis.smembers(gw.keys.members(convenio)))
    page = [c for c in codes if c > after][:limit]
    async with gw.redis.pipeline(transaction=False) as pipe:
        for c in page:
            pipe.hgetall(gw.keys.participant(convenio, c))
        rows = await pipe.execute()
    views = [
        _participant_view(convenio, c, {k.decode(): v.decode() for k, v in r.items()})
        for c, r in zip(page, rows, strict=True)
        if r
    ]
    more = len(page) == limit and page and codes[-1] != page[-1]
    return ParticipantList(participants=views, next_after=page[-1] if more else None)


def _vehicle_view(v: dict[str, Any]) -> VehicleView:
    view = VehicleView(
        plate=v["plate"], description=v.get("description", ""), registered_at=rfc3339(v["registered_at"])
    )
    if v.get("last_km") is not None:
        view.last_km = int(v["last_km"])
        view.last_km_at = rfc3339(int(v["last_km_at"]))
    return view


async def save_vehicle(gw: Gateway, convenio: str, participant: str, body: VehicleSave) -> tuple[bool, VehicleView]:
    k = gw.keys
    res = await gw.run(
        "vehicle_save",
        [
            k.convenio(convenio),
            k.participant(convenio, participant),
            k.vehicles(convenio, participant),
            k.events(k.shard_of(convenio)),
        ],
        [gw.now_ms(), gw.protocol(), convenio, participant, body.plate.upper(), body.description],
    )
    v = _check(res)
    return bool(v.pop("created")), _vehicle_view(v)


async def delete_vehicle(gw: Gateway, convenio: str, participant: str, plate: str) -> None:
    k = gw.keys
    res = await gw.run(
        "vehicle_delete",
        [k.vehicles(convenio, participant), k.events(k.shard_of(convenio))],
        [gw.now_ms(), gw.protocol(), convenio, participant, plate.upper()],
    )
    _check(res)


async def list_vehicles(gw: Gateway, convenio: str, participant: str) -> VehicleList:
    await get_participant(gw, convenio, participant)  # 404s with the right code
    raw = await gw.redis.hgetall(gw.keys.vehicles(convenio, participant))
    vehicles = [_vehicle_view(msgspec.json.decode(v)) for _, v in sorted(raw.items())]
    return VehicleList(vehicles=vehicles)
