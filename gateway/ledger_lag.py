"""How far the ledger writers are behind: events in the streams not yet stored and
acknowledged. Reported by /readyz (against its bound) and as a metric."""

from __future__ import annotations

from redis.exceptions import ResponseError

from gateway.core import Gateway
from gateway.keys import LEDGER_GROUP


async def ledger_lag(gw: Gateway) -> int:
    lag = 0
    for stream in gw.keys.all_events():
        try:
            groups = await gw.redis.xinfo_groups(stream)
        except ResponseError:  # the stream does not exist yet: nothing was ever written
            continue
        group = next((g for g in groups if g["name"] in (LEDGER_GROUP, LEDGER_GROUP.encode())), None)
        if group is None:  # no writer ever started: every event is behind
            lag += await gw.redis.xlen(stream)
            continue
        unread = group.get("lag")
        lag += group["pending"] + (unread if unread is not None else await gw.redis.xlen(stream))
    return lag
