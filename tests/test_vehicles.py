"""Vehicles of a participant (fleet convênios): registered by plate, named on the sale, and the
odometer reading of the last sale kept ("será registrada a quilometragem do veículo na
última venda").

A fleet convênio (requires_vehicle) only sells for a registered vehicle; on any convênio a
sale that names a plate must name one of the participant's own.
"""

from __future__ import annotations

from typing import Any

import httpx

from gateway.holds import sweeper
from gateway.platform.clock import rfc3339
from gateway.platform.services import Services
from tests.checkout import BackOffice, Clock, Terminal

STRADA = "ABC1D23"  # a Mercosul plate


async def vehicles(bo: BackOffice, conv: str = "EMP001", part: str = "CLI001") -> dict[str, dict[str, Any]]:
    r = await bo.client.get(f"/v1/convenios/{conv}/participants/{part}/vehicles", headers=bo.headers)
    assert r.status_code == 200, r.text
    return {v["plate"]: v for v in r.json()["vehicles"]}


async def remove(bo: BackOffice, plate: str, conv: str = "EMP001", part: str = "CLI001") -> httpx.Response:
    return await bo.client.delete(f"/v1/convenios/{conv}/participants/{part}/vehicles/{plate}", headers=bo.headers)


def declined(r: httpx.Response, code: str = "VEHICLE_NOT_REGISTERED") -> dict[str, Any]:
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == code, r.text
    return err


def held(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    return r.json()


def fuel(plate: str, km: int | None = None) -> dict[str, Any]:
    return {"plate": plate} if km is None else {"plate": plate, "odometer_km": km}


async def test_a_fleet_convenio_sells_only_for_a_registered_vehicle(seed: Terminal, backoffice: BackOffice) -> None:
    """FROTA01 requires a vehicle: no plate, or a plate not registered for the driver, is
    declined and holds nothing; the driver's own truck goes through."""
    await backoffice.create_convenio("FROTA01", 100_000, requires_vehicle=True)
    await backoffice.add_participant("FROTA01", "MOT001", limit=50_000, password="2468")
    assert (await backoffice.add_vehicle("FROTA01", "MOT001", STRADA, "FIAT STRADA")).status_code == 201
    driver = seed.as_participant("FROTA01", "MOT001", "2468")

    assert declined(await driver.hold(15_000))["available"] == 50_000
    declined(await driver.hold(15_000, vehicle=fuel("XYZ9A99", 1_200)))
    assert held(await driver.hold(15_000, vehicle=fuel(STRADA, 1_200)))["available"] == 35_000
    limit = (await driver.limit()).json()
    assert (limit["reserved"], limit["available"]) == (15_000, 35_000)

    # the rule follows the convênio's current policy
    assert (await backoffice.update_convenio("FROTA01", requires_vehicle=False)).status_code == 200
    held(await driver.hold(5_000))


async def test_a_plate_named_on_any_convenio_must_be_the_participants_own(
    seed: Terminal, backoffice: BackOffice
) -> None:
    """EMP001 does not require vehicles, but a sale naming a plate is checked: an unknown plate,
    or a colleague's, is declined; the same sale without a vehicle is fine."""
    await backoffice.add_participant("EMP001", "CLI002", limit=1_000)
    assert (await backoffice.add_vehicle("EMP001", "CLI002", STRADA)).status_code == 201

    assert declined(await seed.hold(578, vehicle=fuel("ZZZ0Z00", 100)))["available"] == 11_000
    declined(await seed.hold(578, vehicle=fuel(STRADA, 100)))  # CLI002's, not CLI001's
    assert held(await seed.hold(578))["available"] == 11_000 - 578


async def test_the_odometer_is_recorded_when_the_sale_commits(
    seed: Terminal, backoffice: BackOffice, svc: Services, clock: Clock
) -> None:
    """Only a sale that happened says where the odometer was: a hold, a cancelled hold or an
    expired one leaves last_km alone; the committed R$ 5,78 sale at 45.230 km sets it."""
    assert (await backoffice.add_vehicle("EMP001", "CLI001", STRADA, "FIAT STRADA")).status_code == 201
    assert "last_km" not in (await vehicles(backoffice))[STRADA]

    cancelled = held(await seed.hold(578, vehicle=fuel(STRADA, 45_210)))
    assert "last_km" not in (await vehicles(backoffice))[STRADA]
    assert (await seed.cancel(cancelled["id"], reason="cliente desistiu")).status_code == 200
    assert "last_km" not in (await vehicles(backoffice))[STRADA]

    sale = held(await seed.hold(578, vehicle=fuel(STRADA, 45_230)))
    assert "last_km" not in (await vehicles(backoffice))[STRADA]
    clock.advance(30)
    assert (await seed.commit(sale["id"], coupon="CUPOM-578")).status_code == 200
    truck = (await vehicles(backoffice))[STRADA]
    assert (truck["last_km"], truck["last_km_at"]) == (45_230, rfc3339(clock.now))
    assert truck["description"] == "FIAT STRADA"
    assert (await seed.get(sale["id"])).json()["vehicle"] == {"plate": STRADA, "odometer_km": 45_230}

    # a hold that runs out says nothing about the odometer either
    held(await seed.hold(578, vehicle=fuel(STRADA, 45_999)))
    clock.advance(svc.settings.hold_ttl_s + 1)
    assert await sweeper.sweep_once(svc) == 1
    assert (await vehicles(backoffice))[STRADA]["last_km"] == 45_230

    # a committed sale without a reading keeps the last one
    no_reading = held(await seed.hold(100, vehicle=fuel(STRADA)))
    assert (await seed.commit(no_reading["id"], coupon="CUPOM-100")).status_code == 200
    assert (await vehicles(backoffice))[STRADA]["last_km"] == 45_230

    # editing the vehicle's description keeps its reading
    again = await backoffice.add_vehicle("EMP001", "CLI001", STRADA, "FIAT STRADA CD")
    assert again.status_code == 200, again.text
    assert (again.json()["last_km"], again.json()["description"]) == (45_230, "FIAT STRADA CD")


async def test_plates_are_case_insensitive(seed: Terminal, backoffice: BackOffice) -> None:
    """ "abc1d23" typed at the back office or at the checkout is the same vehicle, ABC1D23."""
    first = await backoffice.add_vehicle("EMP001", "CLI001", "abc1d23")
    assert first.status_code == 201 and first.json()["plate"] == STRADA
    assert (await backoffice.add_vehicle("EMP001", "CLI001", STRADA)).status_code == 200  # not a second one
    assert list(await vehicles(backoffice)) == [STRADA]

    sale = held(await seed.hold(578, vehicle=fuel("abc1d23", 7_000)))
    assert (await seed.commit(sale["id"])).status_code == 200
    assert (await vehicles(backoffice))[STRADA]["last_km"] == 7_000


async def test_a_deleted_vehicle_no_longer_authorizes_sales(seed: Terminal, backoffice: BackOffice) -> None:
    """Once removed, the plate is unknown to the checkout; a sale already held for it may still
    commit, without bringing the vehicle back."""
    assert (await backoffice.add_vehicle("EMP001", "CLI001", STRADA)).status_code == 201
    pending = held(await seed.hold(578, vehicle=fuel(STRADA, 50_000)))

    gone = await remove(backoffice, "abc1d23")  # case-insensitive here too
    assert gone.status_code == 200 and gone.json() == {"ok": True}
    assert await vehicles(backoffice) == {}
    declined(await seed.hold(578, vehicle=fuel(STRADA, 50_100)))

    assert (await seed.commit(pending["id"])).status_code == 200
    assert await vehicles(backoffice) == {}

    again = await remove(backoffice, STRADA)
    assert again.status_code == 404 and again.json()["error"]["code"] == "UNKNOWN_VEHICLE"


async def test_vehicles_belong_to_known_participants(seed: Terminal, backoffice: BackOffice) -> None:
    """Registering or reading vehicles of someone not in the registry is 404, naming who is
    missing; a malformed plate is refused before anything is stored."""
    r = await backoffice.add_vehicle("EMP001", "CLI999", STRADA)
    assert r.status_code == 404 and r.json()["error"]["code"] == "UNKNOWN_PARTICIPANT", r.text
    r = await backoffice.client.get("/v1/convenios/EMP001/participants/CLI999/vehicles", headers=backoffice.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "UNKNOWN_PARTICIPANT", r.text

    bad = await backoffice.add_vehicle("EMP001", "CLI001", "ABC 1D23")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "INVALID_REQUEST", bad.text
    assert bad.json()["error"]["field"] == "plate"
    assert await vehicles(backoffice) == {}


async def test_an_unknown_convenio_is_named_as_such_on_reads_and_writes(backoffice: BackOffice) -> None:
    """Like every other registry endpoint (GET participant, GET vehicles, limit query, hold),
    registering a vehicle under a convênio that does not exist says UNKNOWN_CONVENIO."""
    r = await backoffice.client.get("/v1/convenios/EMP999/participants/CLI001/vehicles", headers=backoffice.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "UNKNOWN_CONVENIO", r.text
    r = await backoffice.add_vehicle("EMP999", "CLI001", STRADA)
    assert r.status_code == 404 and r.json()["error"]["code"] == "UNKNOWN_CONVENIO", r.text
