"""How far the ledger writers are behind: events in the streams not yet stored and
acknowledged. Reported by /readyz (against its bound) and as a metric."""

from __future__ import annotations

import asyncio
import time

from redis.exceptions import ResponseError

from gateway.platform.redis.keys import LEDGER_GROUP
from gateway.platform.services import Services


async def ledger_lag(svc: Services) -> int:
    lag = 0
    for stream in svc.keys.all_events():
        try:
            groups = await svc.redis.xinfo_groups(stream)
        except ResponseError:  # the stream does not exist yet: nothing was ever written
            continue
        group = next((g for g in groups if g["name"] in (LEDGER_GROUP, LEDGER_GROUP.encode())), None)
        if group is None:  # no writer ever started: every event is behind
            lag += await svc.redis.xlen(stream)
            continue
        unread = group.get("lag")
        lag += group["pending"] + (unread if unread is not None else await svc.redis.xlen(stream))
    return lag


def _sid(raw: bytes | str) -> tuple[int, int]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


async def stored_up_to_now(svc: Services, timeout_s: float, poll_s: float = 0.05) -> int:
    """Wait (bounded) until every event appended before this call is stored and acknowledged.
    Unlike a zero lag, this barrier is reached under live traffic. Returns how many of those
    events are still not stored (0: the ledger holds everything up to the call)."""
    marks: dict[str, tuple[int, int]] = {}
    for stream in svc.keys.all_events():
        try:
            info = await svc.redis.xinfo_stream(stream)
        except ResponseError:
            continue
        if info.get("length"):
            marks[stream] = _sid(info["last-generated-id"])
    deadline = time.monotonic() + timeout_s
    while True:
        behind = 0
        for stream, mark in marks.items():
            behind += await _behind(svc, stream, mark)
        if behind == 0 or time.monotonic() >= deadline:
            return behind
        await asyncio.sleep(poll_s)


async def _behind(svc: Services, stream: str, mark: tuple[int, int]) -> int:
    """Entries up to mark not yet acknowledged by the ledger's group (an estimate above 0)."""
    groups = await svc.redis.xinfo_groups(stream)
    group = next((g for g in groups if g["name"] in (LEDGER_GROUP, LEDGER_GROUP.encode())), None)
    if group is None:
        return max(1, await svc.redis.xlen(stream))
    if _sid(group["last-delivered-id"]) < mark:
        return max(1, group.get("lag") or 1)
    if not group["pending"]:
        return 0
    oldest = await svc.redis.xpending_range(stream, LEDGER_GROUP, min="-", max=f"{mark[0]}-{mark[1]}", count=1000)
    return len(oldest)
