"""Time as integer milliseconds since the epoch, and its RFC 3339 rendering for the API."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def system_ms() -> int:
    return time.time_ns() // 1_000_000


def rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
