"""Identifiers: protocols (one per decision) and empenho ids (which carry their shard)."""

from __future__ import annotations

import os
import re
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_EMPENHO_ID = re.compile(r"^E([0-9]{1,4})-([0-9A-Z]{26})$")


def _ulid() -> str:
    """A 26-character ULID: 48 bits of ms time then 80 random bits; sorts by time."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    out = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        out.append(_CROCKFORD[rem])
    return "".join(reversed(out))


def new_protocol() -> str:
    return "P" + _ulid()


def new_empenho_id(shard: int) -> str:
    return f"E{shard}-{_ulid()}"


def empenho_shard(empenho_id: str, shards: int) -> int | None:
    """The shard an empenho id names, or None when the id cannot be one of ours."""
    m = _EMPENHO_ID.match(empenho_id)
    if not m:
        return None
    shard = int(m.group(1))
    return shard if shard < shards else None
