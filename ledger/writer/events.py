"""The events the Lua scripts append to the shard streams, as the writer reads them, and their
catalogue: every event type, once, with the projections that fold it. A type no projection
folds is kept in the journal only. tests/test_events.py reads the scripts and holds this
catalogue to them, and to the projections' own handlers.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.platform.clock import utc

_decode = msgspec.json.Decoder().decode
_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


@dataclass(frozen=True)
class Event:
    protocol: str
    shard: str
    stream_id: str
    type: str
    at: datetime.datetime
    data: dict[str, Any]


def clean(raw: bytes) -> bytes:
    """Postgres refuses NUL in text and jsonb; the HTTP edge refuses it in every field, and
    should one still reach an event it becomes U+FFFD here rather than stall its shard."""
    return _NUL.sub(rb"\1\\ufffd", raw) if b"\\u0000" in raw else raw


def to_event(shard: str, stream_id: bytes, fields: dict[bytes, bytes]) -> Event:
    return Event(
        protocol=fields[b"protocol"].decode(),
        shard=shard,
        stream_id=stream_id.decode(),
        type=fields[b"type"].decode(),
        at=utc(int(fields[b"at"])),
        data=_decode(clean(fields[b"data"])),
    )


def as_list(value: Any) -> list[Any]:
    """Lua's JSON writes an empty list as {}."""
    return value if isinstance(value, list) else []


def answer_of(d: dict[str, Any]) -> dict[str, Any]:
    """The answer a script gave, as the client saw it (without the script's own status)."""
    answer = {k: v for k, v in (d.get("answer") or {}).items() if k not in ("s", "replay")}
    if "credits" in answer:
        answer["credits"] = as_list(answer["credits"])
    return answer


CONVENIOS, API_KEYS, CREDITS, DECISIONS, HISTORY = "convenios", "api_keys", "credits", "decisions", "history"
AUDIT = "audit"

#: every event type the scripts emit -> the projections that fold it (() : the journal only)
CATALOGUE: dict[str, tuple[str, ...]] = {
    # the registry (convenio_save, convenio_standing, participant_save, vehicle_*)
    "convenio.created": (CONVENIOS, DECISIONS, HISTORY, AUDIT),
    "convenio.updated": (CONVENIOS, DECISIONS, HISTORY, AUDIT),
    "participant.created": (CONVENIOS, DECISIONS, HISTORY, AUDIT),
    "participant.updated": (CONVENIOS, DECISIONS, HISTORY, AUDIT),
    "vehicle.saved": (CONVENIOS, DECISIONS, AUDIT),
    "vehicle.deleted": (CONVENIOS, DECISIONS, AUDIT),
    # API keys and the integration key (apikey_create, apikey_revoke, integration_set)
    "apikey.created": (API_KEYS, DECISIONS, AUDIT),
    "apikey.revoked": (API_KEYS, DECISIONS, AUDIT),
    "apikey.rotated": (API_KEYS, DECISIONS, AUDIT),
    # stores and their terminals (store_save, terminal_save)
    "store.saved": (API_KEYS, AUDIT),
    "terminal.saved": (API_KEYS, AUDIT),
    "integration.key_set": (API_KEYS, DECISIONS, AUDIT),
    # password checks (password_attempt, password_result), on the stream of the customer's shard
    "password.verified": (DECISIONS,),
    "password.failed": (DECISIONS,),
    "password.locked": (CONVENIOS, DECISIONS),
    "password.refused": (DECISIONS,),
    # empenhos (empenho_hold, empenho_commit, empenho_cancel, empenho_expire)
    "empenho.held": (CONVENIOS, DECISIONS),
    "empenho.declined": (DECISIONS,),
    "empenho.committed": (CONVENIOS, DECISIONS),
    "empenho.commit_refused": (DECISIONS,),
    "empenho.cancelled": (CONVENIOS, DECISIONS),
    "empenho.reversed": (CONVENIOS, DECISIONS),
    "empenho.cancel_refused": (DECISIONS,),
    "empenho.expired": (CONVENIOS, DECISIONS),
    # returns of a committed empenho (empenho_return)
    "empenho.returned": (CONVENIOS, DECISIONS),
    "empenho.return_declined": (DECISIONS,),
    # the month's batches (balance_batch)
    "balance.rolled_over": (CONVENIOS,),
    "balance.restored": (CONVENIOS,),
    # customer credits and credit holds (credit_*)
    "credit.created": (CREDITS, DECISIONS, AUDIT),
    "credit.held": (CREDITS, DECISIONS),
    "credit.declined": (DECISIONS,),
    "credit.committed": (CREDITS, DECISIONS),
    "credit.commit_refused": (DECISIONS,),
    "credit.cancelled": (CREDITS, DECISIONS),
    "credit.reversed": (CREDITS, DECISIONS),
    "credit.cancel_refused": (DECISIONS,),
    "credit.expired": (CREDITS, DECISIONS),
    # returns of a committed credit hold (credit_hold_return)
    "credit.returned": (CREDITS, DECISIONS),
    "credit.return_declined": (DECISIONS,),
    # the ERP's order statuses (order_status_set, order_status_record)
    "order.status_params_set": (CREDITS, AUDIT),
    "order.status_processed": (CREDITS,),
}
