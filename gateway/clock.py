"""Time as integer milliseconds since the epoch, and its RFC 3339 rendering for the API."""

from __future__ import annotations

import time
from zoneinfo import ZoneInfo

#: the retailers' local time: business days, limit windows, the month's batches
LOCAL = ZoneInfo("America/Sao_Paulo")


def system_ms() -> int:
    return time.time_ns() // 1_000_000


def rfc3339(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"
