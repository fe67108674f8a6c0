"""Limit query: what a participant may still spend on a convênio."""

from __future__ import annotations

import asyncio

from gateway.holds.schemas import LimitView
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.services import Services


async def limit_of(svc: Services, convenio: str, participant: str) -> LimitView:
    k = svc.keys
    res = await svc.run("limit", [k.convenio(convenio), k.participant(convenio, participant)], [])
    if not res["ok"]:
        raise ApiError(res["code"])
    conv, part = res["r"]["conv"], res["r"]["part"]
    pool = conv if conv["shared"] else part
    # The terminal needs one verdict: a blocked convênio blocks every participant.
    status = conv["status"] if conv["status"] != "ACTIVE" else part["status"]
    return LimitView(
        convenio=convenio,
        participant=participant,
        status=status,
        shared=conv["shared"],
        limit=pool["limit"],
        tolerance=conv["tolerance"],
        balance=pool["balance"],
        reserved=pool["reserved"],
        available=pool["balance"] + conv["tolerance"] - pool["reserved"],
    )


async def convenios_of(svc: Services, participant: str) -> list[LimitView]:
    listed = await svc.redis.hget(svc.keys.participant_convenios(participant), participant)
    codes = sorted(listed.decode().split(",")) if listed else []
    results = await asyncio.gather(*(limit_of(svc, c, participant) for c in codes), return_exceptions=True)
    views = []
    for r in results:
        if isinstance(r, LimitView):
            views.append(r)
        elif not (isinstance(r, ApiError) and r.code in (ErrorCode.UNKNOWN_CONVENIO, ErrorCode.UNKNOWN_PARTICIPANT)):
            raise r  # a stale index entry is skipped; anything else is real
    if not views:
        raise ApiError(ErrorCode.UNKNOWN_PARTICIPANT, "No convênio has a participant with this code.")
    return views
