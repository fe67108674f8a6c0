"""Identifiers: one ULID-based id per kind of record, and the patterns that recognise them.

An empenho's and a credit hold's id carry the shard their records live in (`E7-…`, `C7-…`), so
commit and cancel find them without an index.
"""

from __future__ import annotations

import os
import re
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: every 10-bit value as its two Crockford digits: a ULID is 13 lookups (this runs twice per hold)
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
ULID = "[0-9A-Z]{26}"

#: what each kind of id looks like (the HTTP edge checks path parameters against these)
EMPENHO_ID = re.compile(rf"^E([0-9]{{1,4}})-({ULID})$")
CREDIT_HOLD_ID = re.compile(rf"^C([0-9]{{1,4}})-({ULID})$")
DUPLICATA_ID = re.compile(rf"^D{ULID}$")
LIMIT_REQUEST_ID = re.compile(rf"^L{ULID}$")

_ms_text = (-1, "")  # the last millisecond and its 10 digits, rebound together


def _ulid() -> str:
    """A 26-character ULID: 48 bits of ms time (10 digits, two leading zero bits) then 80 random
    bits (16 digits); sorts by time. The time's digits are made once per millisecond."""
    global _ms_text
    ms = time.time_ns() // 1_000_000
    cached, text = _ms_text  # one read: a thread never pairs one millisecond with another's digits
    if ms != cached:
        text = "".join(_PAIRS[(ms >> s) & 1023] for s in (40, 30, 20, 10, 0))
        _ms_text = (ms, text)
    r, p = int.from_bytes(os.urandom(10), "big"), _PAIRS
    return (
        text
        + p[r >> 70]
        + p[(r >> 60) & 1023]
        + p[(r >> 50) & 1023]
        + p[(r >> 40) & 1023]
        + p[(r >> 30) & 1023]
        + p[(r >> 20) & 1023]
        + p[(r >> 10) & 1023]
        + p[r & 1023]
    )


def new_protocol() -> str:
    return "P" + _ulid()


def new_duplicata_id() -> str:
    return "D" + _ulid()


def new_limit_request_id() -> str:
    return "L" + _ulid()


def new_credit_id() -> str:
    return "CR" + _ulid()


def new_empenho_id(shard: int) -> str:
    return f"E{shard}-{_ulid()}"


def new_credit_hold_id(shard: int) -> str:
    return f"C{shard}-{_ulid()}"


def new_return_id(shard: int) -> str:
    """A return of a sale (either kind of hold): in the shard of the sale it returns."""
    return f"R{shard}-{_ulid()}"


def _shard(pattern: re.Pattern[str], value: str, shards: int) -> int | None:
    m = pattern.match(value)
    if not m:
        return None
    shard = int(m.group(1))
    return shard if shard < shards else None


def empenho_shard(empenho_id: str, shards: int) -> int | None:
    """The shard an empenho id names, or None when the id cannot be one of ours."""
    return _shard(EMPENHO_ID, empenho_id, shards)


def credit_hold_shard(hold_id: str, shards: int) -> int | None:
    """The shard a credit hold id names, or None when the id cannot be one of ours."""
    return _shard(CREDIT_HOLD_ID, hold_id, shards)
