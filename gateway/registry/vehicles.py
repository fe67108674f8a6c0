"""A participant's vehicles (fleet convênios sell only for a registered plate): saved and deleted
through their Lua scripts, with the odometer of the last sale kept per plate."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.platform.clock import rfc3339
from gateway.platform.services import Services
from gateway.registry.convenios import checked
from gateway.registry.participants import get_participant
from gateway.registry.schemas import VehicleList, VehicleSave, VehicleView


def _vehicle_view(v: dict[str, Any]) -> VehicleView:
    view = VehicleView(
        plate=v["plate"], description=v.get("description", ""), registered_at=rfc3339(v["registered_at"])
    )
    if v.get("last_km") is not None:
        view.last_km = int(v["last_km"])
        view.last_km_at = rfc3339(int(v["last_km_at"]))
    return view


async def save_vehicle(
    svc: Services, convenio: str, participant: str, body: VehicleSave, by: str = ""
) -> tuple[bool, VehicleView]:
    k = svc.keys
    res = await svc.run(
        "vehicle_save",
        [
            k.convenio(convenio),
            k.participant(convenio, participant),
            k.vehicles(convenio, participant),
            k.events(k.shard_of(convenio)),
        ],
        [svc.now_ms(), svc.protocol(), convenio, participant, body.plate.upper(), body.description, by],
    )
    v = checked(res)
    return bool(v.pop("created")), _vehicle_view(v)


async def delete_vehicle(svc: Services, convenio: str, participant: str, plate: str, by: str = "") -> None:
    k = svc.keys
    res = await svc.run(
        "vehicle_delete",
        [k.vehicles(convenio, participant), k.events(k.shard_of(convenio))],
        [svc.now_ms(), svc.protocol(), convenio, participant, plate.upper(), by],
    )
    checked(res)


async def list_vehicles(svc: Services, convenio: str, participant: str) -> VehicleList:
    await get_participant(svc, convenio, participant)  # 404s with the right code
    raw = await svc.redis.hgetall(svc.keys.vehicles(convenio, participant))
    vehicles = [_vehicle_view(msgspec.json.decode(v)) for _, v in sorted(raw.items())]
    return VehicleList(vehicles=vehicles)
