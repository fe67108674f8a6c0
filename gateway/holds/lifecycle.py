"""The life of a hold, written once for both kinds: an empenho on a convênio's balance and a credit
hold on a customer's credits. Placed under an Idempotency-Key, then committed (posted, all or
part), cancelled (voided or reversed) or expired; every step is one Lua script (the shared part
is gateway/lua/lib/hold.lua) and this module is its Python side: the idempotency claim, finding
a hold by its id, turning a script's answer into the contract's body or error, and expiry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from gateway.platform import ids
from gateway.platform.digests import digest
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.http.endpoint import Reply
from gateway.platform.redis.keys import Keys
from gateway.platform.services import Services
from gateway.platform.streams import stored_up_to_now

_encode = msgspec.json.Encoder().encode

REPLAYED = {"Idempotent-Replayed": "true"}


@dataclass(frozen=True)
class Answer:
    """What a hold operation answers: status, body, and whether it replays an earlier answer."""

    status: int
    body: Any
    replayed: bool = False

    def reply(self) -> Reply:
        return Reply(self.body, self.status, dict(REPLAYED) if self.replayed else {})


@dataclass(frozen=True)
class Kind:
    """What tells one kind of hold from the other: where its records live and who owns it."""

    name: str
    unknown: ErrorCode
    shard_of: Callable[[str, int], int | None]
    record: Callable[[Keys, int, str], str]
    pending: Callable[[Keys, int], str]
    #: the record's fields that name its owner (and its keys): convênio and participant, or customer
    owner: tuple[str, ...]
    expire_script: str
    #: the keys of its commit, cancel and expire scripts: (keys, shard, id, owner) -> keys
    lifecycle_keys: Callable[[Keys, int, str, tuple[str, ...]], list[str]]
    #: where its status history lives: a list beside the record, or the record itself
    history: Callable[[Keys, int, str], str]


def _empenho_keys(k: Keys, shard: int, empenho_id: str, owner: tuple[str, ...]) -> list[str]:
    convenio, participant = owner
    return [
        k.empenho(shard, empenho_id),
        k.empenho_history(shard, empenho_id),
        k.convenio(convenio),
        k.participant(convenio, participant),
        k.pending(shard),
        k.events(shard),
    ]


def _credit_hold_keys(k: Keys, shard: int, hold_id: str, owner: tuple[str, ...]) -> list[str]:
    (customer,) = owner
    return [
        k.credit_hold(shard, hold_id),
        k.credits(customer),
        k.credits_open(customer),
        k.credit_pending(shard),
        k.events(shard),
    ]


EMPENHO = Kind(
    "empenho",
    ErrorCode.UNKNOWN_EMPENHO,
    ids.empenho_shard,
    Keys.empenho,
    Keys.pending,
    ("convenio", "participant"),
    "empenho_expire",
    _empenho_keys,
    Keys.empenho_history,
)
CREDIT_HOLD = Kind(
    "credit hold",
    ErrorCode.UNKNOWN_CREDIT_HOLD,
    ids.credit_hold_shard,
    Keys.credit_hold,
    Keys.credit_pending,
    ("customer",),
    "credit_expire",
    _credit_hold_keys,
    Keys.credit_hold,
)
KINDS = (EMPENHO, CREDIT_HOLD)


def fingerprint(kind: bytes, request: msgspec.Struct) -> str:
    """What makes two requests under one Idempotency-Key the same request."""
    return hashlib.sha256(kind + msgspec.json.encode(request)).hexdigest()


def key_digest(idempotency_key: str) -> str:
    """What the scripts and the claim store of an Idempotency-Key."""
    return digest(idempotency_key)[:32]


async def claim(svc: Services, api_key_id: str, idempotency_key: str, request_fingerprint: str) -> str:
    """Claim the Idempotency-Key for this request, and return the key's digest (what the scripts
    store). A key belongs to the first request that used it, hold or credit hold, whatever
    convênio or customer (and so whatever shard) it named; the answer itself lives beside the
    hold. The same key for another request is IDEMPOTENCY_CONFLICT."""
    idem = key_digest(idempotency_key)
    first = await svc.resp.command(
        "SET",
        svc.keys.idempotency_claim(api_key_id, idem),
        request_fingerprint,
        "NX",
        "GET",
        "EX",
        svc.settings.idempotency_ttl_s,
    )
    if first is not None and first.decode() != request_fingerprint:
        raise ApiError(ErrorCode.IDEMPOTENCY_CONFLICT)
    return idem


def placed(res: dict[str, Any], body: Callable[[dict[str, Any]], Any]) -> Answer:
    """A placement script's answer (a hold, or a return of one): 201 with its body, or its decline
    raised (a decline is a decision too: it carries its protocol, and replays with the
    Idempotent-Replayed header)."""
    if not res["ok"]:
        raise ApiError(res["code"])
    r = res["r"]
    replayed = bool(r.get("replay"))
    if r["s"] != 201:
        raise ApiError(
            r["error"],
            available=r.get("available"),
            scope=r.get("scope"),
            remaining=r.get("remaining"),
            returnable=r.get("returnable"),
            status=r.get("status"),
            protocol=r.get("protocol"),
            headers=REPLAYED if replayed else None,
        )
    return Answer(201, body(r), replayed)


def settled(res: dict[str, Any], body: Callable[[dict[str, Any]], Any]) -> Answer:
    """A commit's or cancel's answer: 200 with the outcome, or its refusal raised."""
    if not res["ok"]:
        raise ApiError(res["code"], **res["x"])
    r = res["r"]
    return Answer(200, body(r), bool(r.get("replay")))


#: what the ledger keeps of a hold, shaped as Redis keeps it: its hash fields and history entries
Stored = Callable[[], Awaitable[tuple[dict[str, Any], list[str]] | None]]
LEDGER_WAIT_S = 2.0  # how long bringing a hold back waits for the ledger writer


async def locate(svc: Services, kind: Kind, hold_id: str, stored: Stored | None = None) -> tuple[int, tuple[str, ...]]:
    """The shard and owner of a hold in Redis; an id that is not one of ours is unknown. A final
    hold Redis no longer holds is brought back from the ledger when `stored` reads it there
    (hold_restore.lua), once the ledger holds every event appended before now; else unknown."""
    shard = kind.shard_of(hold_id, svc.settings.shards)
    if shard is None:
        raise ApiError(kind.unknown)
    owner = await svc.redis.hmget(kind.record(svc.keys, shard, hold_id), *kind.owner)
    if owner[0] is None:
        if stored is None or not await _restore(svc, kind, shard, hold_id, stored):
            raise ApiError(kind.unknown)
        owner = await svc.redis.hmget(kind.record(svc.keys, shard, hold_id), *kind.owner)
        if owner[0] is None:
            raise ApiError(kind.unknown)
    return shard, tuple(v.decode() for v in owner)


async def _restore(svc: Services, kind: Kind, shard: int, hold_id: str, stored: Stored) -> bool:
    """Put a final hold back from the ledger; False when the ledger does not know it as final (a
    PENDING hold lost from Redis is not brought back: its reservation went with it)."""
    record = await stored()
    if record is None or record[0]["status"] == "PENDING":
        return False
    if await stored_up_to_now(svc, LEDGER_WAIT_S):  # a change of it may still be on its way
        raise ApiError(ErrorCode.LEDGER_UNAVAILABLE, "The ledger is storing the latest events; try again shortly.")
    fields, history = (await stored()) or record
    k = svc.keys
    await svc.run(
        "hold_restore",
        [kind.record(k, shard, hold_id), kind.history(k, shard, hold_id)],
        [
            _encode({name: value for name, value in fields.items() if value is not None}).decode(),
            _encode(history).decode(),
            svc.settings.final_empenho_ttl_s,
        ],
    )
    return True


async def expire(svc: Services, kind: Kind, shard: int, hold_id: str) -> bool:
    """Release one PENDING hold if its time has run out; True when it expired now."""
    owner = await svc.redis.hmget(kind.record(svc.keys, shard, hold_id), *kind.owner)
    if owner[0] is None:  # already gone from Redis: only the index entry is left
        await svc.redis.zrem(kind.pending(svc.keys, shard), hold_id)
        return False
    res = await svc.run(
        kind.expire_script,
        kind.lifecycle_keys(svc.keys, shard, hold_id, tuple(v.decode() for v in owner)),
        [hold_id, svc.now_ms(), svc.protocol(), svc.settings.final_empenho_ttl_s],
    )
    return bool(res["r"]["expired"])
