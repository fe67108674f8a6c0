"""Identifiers: one ULID-based id per kind of record, and the patterns that recognise them.

An empenho's and a credit hold's id carry the shard their records live in (`E7-…`, `C7-…`), so
commit and cancel find them without an index.
"""

from __future__ import annotations

import base64
import os
import re
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_FROM_RFC4648 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD.encode())
ULID = "[0-9A-Z]{26}"

#: what each kind of id looks like (the HTTP edge checks path parameters against these)
EMPENHO_ID = re.compile(rf"^E([0-9]{{1,4}})-({ULID})$")
CREDIT_HOLD_ID = re.compile(rf"^C([0-9]{{1,4}})-({ULID})$")
DUPLICATA_ID = re.compile(rf"^D{ULID}$")
LIMIT_REQUEST_ID = re.compile(rf"^L{ULID}$")


def _ulid() -> str:
    """A 26-character ULID: 48 bits of ms time then 80 random bits; sorts by time."""
    value = (time.time_ns() // 1_000_000 << 80) | int.from_bytes(os.urandom(10), "big")
    # 130 bits (2 leading zeros + 128) are the first 26 of base32's 32 digits for 160 bits; the
    # C encoder then one translate beat 26 divmods in Python (this runs twice per hold)
    return base64.b32encode((value << 30).to_bytes(20, "big"))[:26].translate(_FROM_RFC4648).decode()


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
