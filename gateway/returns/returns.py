"""Returns of a committed sale, at any time after its commit and in as many parts as it takes:
each is one Lua script (empenho_return, credit_hold_return), one decision under its protocol and
its Idempotency-Key, and the sale's returns never add up to more than it committed.

A sale Redis has forgotten (final holds leave it after CONVENIO_FINAL_EMPENHO_TTL) is found in
the ledger and its record brought back by the same script that decides the return, so the
return is still decided atomically against what is left of the sale. An empenho's return
refunded as CREDIT becomes a DEVOLUCAO credit of the customer (credit_create.lua, whose
reference names the return): a retry of the return replays it and creates the same credit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from gateway.credits import credits
from gateway.credits import holds as credit_holds
from gateway.credits.holds import given_back
from gateway.credits.schemas import CreditCreate, CreditOrigin
from gateway.holds import lifecycle
from gateway.holds.empenhos import refund_reference, stored_record
from gateway.holds.lifecycle import EMPENHO, Answer
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.ids import credit_hold_shard, empenho_shard, new_return_id
from gateway.platform.services import Services
from gateway.platform.streams import stored_up_to_now
from gateway.returns.schemas import (
    CreditReturnOutcome,
    CreditReturnRequest,
    RefundCredit,
    ReturnOutcome,
    ReturnRequest,
)

_encode = msgspec.json.Encoder().encode
LEDGER_WAIT_S = 2.0  # how long a return of a forgotten sale waits for the ledger writer
_STORING = "The ledger is storing the latest events; return again shortly."


def _outcome(r: dict[str, Any]) -> ReturnOutcome:
    return ReturnOutcome(
        id=r["id"],
        empenho=r["empenho"],
        amount=r["amount"],
        returned=r["returned"],
        returnable=r["returnable"],
        balance=r["balance"],
        refund=r["refund"],
        protocol=r["protocol"],
    )


async def _from_ledger(svc: Services, read: Callable[[], Awaitable[Any]], unknown: ErrorCode) -> tuple[Any, bool]:
    """The ledger's record of a sale Redis no longer holds (`read` fetches it), and whether the
    ledger holds every event appended before now (only then does it count every earlier return).
    An id the ledger has never heard of is unknown at once: a sale still on its way to the ledger
    is in Redis."""
    stored = await read()
    if stored is None:
        raise ApiError(unknown)
    if await stored_up_to_now(svc, LEDGER_WAIT_S):  # events still on their way: not current
        return stored, False
    return (await read()) or stored, True


def _forgotten(res: dict[str, Any]) -> bool:
    return bool(res["ok"] and res["r"].get("forgotten"))


def empenho_return_call(
    svc: Services,
    empenho_id: str,
    shard: int,
    convenio: str,
    participant: str,
    req: ReturnRequest,
    api_key_id: str,
    idem: str,
    fingerprint: str,
    return_id: str,
    ledger: str,
) -> tuple[list[str], list[Any]]:
    """The keys and arguments of empenho_return.lua (its header says what each is)."""
    k, s = svc.keys, svc.settings
    keys = [
        k.empenho(shard, empenho_id),
        k.empenho_history(shard, empenho_id),
        k.convenio(convenio),
        k.participant(convenio, participant),
        k.idempotency(convenio, api_key_id, idem),
        k.events(shard),
    ]
    args: list[Any] = [
        empenho_id,
        svc.now_ms(),
        svc.protocol(),
        req.amount,
        fingerprint,
        s.idempotency_ttl_s,
        req.store,
        req.terminal,
        req.reason or "",
        req.refund,
        return_id,
        api_key_id,
        idem,
        s.final_empenho_ttl_s,
        convenio,
        participant,
        ledger,
    ]
    return keys, args


async def return_empenho(
    svc: Services, api_key_id: str, idempotency_key: str, empenho_id: str, req: ReturnRequest
) -> Answer:
    """Return part of a COMMITTED empenho: to its pool, or as the customer's DEVOLUCAO credit."""
    shard = empenho_shard(empenho_id, svc.settings.shards)
    if shard is None:
        raise ApiError(ErrorCode.UNKNOWN_EMPENHO)
    fingerprint = lifecycle.fingerprint(b"empenho-return:" + empenho_id.encode() + b":", req)
    idem = await lifecycle.claim(svc, api_key_id, idempotency_key, fingerprint)
    return_id = new_return_id(shard)
    owner = await svc.redis.hmget(EMPENHO.record(svc.keys, shard, empenho_id), *EMPENHO.owner)
    res = None
    if owner[0] is not None:
        convenio, participant = (v.decode() for v in owner)
        keys, args = empenho_return_call(
            svc, empenho_id, shard, convenio, participant, req, api_key_id, idem, fingerprint, return_id, ""
        )
        res = await svc.run("empenho_return", keys, args)
    if res is None or _forgotten(res):  # Redis forgot the sale: the ledger has it
        (fields, history), current = await _from_ledger(
            svc, lambda: stored_record(svc, empenho_id), ErrorCode.UNKNOWN_EMPENHO
        )
        convenio, participant = fields["convenio"], fields["participant"]
        # a ledger still storing may miss a return: then only a record another return put back
        # meanwhile is good enough
        ledger = _encode({"fields": fields, "history": history}).decode() if current else ""
        keys, args = empenho_return_call(
            svc, empenho_id, shard, convenio, participant, req, api_key_id, idem, fingerprint, return_id, ledger
        )
        res = await svc.run("empenho_return", keys, args)
        if _forgotten(res):
            raise ApiError(ErrorCode.LEDGER_UNAVAILABLE, _STORING)
    answer = lifecycle.placed(res, _outcome)
    if req.refund == "CREDIT":
        answer.body.credit = await _refund_as_credit(svc, api_key_id, participant, req, answer.body, res["r"])
    return answer


async def _refund_as_credit(
    svc: Services, api_key_id: str, customer: str, req: ReturnRequest, outcome: ReturnOutcome, r: dict[str, Any]
) -> RefundCredit:
    """The DEVOLUCAO credit the return became: created once, whatever the retries."""
    credit = CreditCreate(
        reference=refund_reference(outcome.id),
        type="DEVOLUCAO",
        amount=outcome.amount,
        origin=CreditOrigin(channel="STORE", store=req.store, terminal=req.terminal, order=r.get("order") or None),
    )
    created = await credits.create(svc, customer, credit, api_key_id, (outcome.id, outcome.empenho))
    return RefundCredit(id=created.body.id, reference=created.body.reference)


# -- credit holds ---------------------------------------------------------------------------------
def _credit_outcome(r: dict[str, Any]) -> CreditReturnOutcome:
    return CreditReturnOutcome(
        id=r["id"],
        hold=r["hold"],
        amount=r["amount"],
        returned=r["returned"],
        returnable=r["returnable"],
        credits=[given_back(c) for c in r["credits"]] if isinstance(r["credits"], list) else [],
        protocol=r["protocol"],
    )


def credit_return_call(
    svc: Services,
    hold_id: str,
    shard: int,
    customer: str,
    req: CreditReturnRequest,
    api_key_id: str,
    idem: str,
    fingerprint: str,
    return_id: str,
    ledger: str,
) -> tuple[list[str], list[Any]]:
    """The keys and arguments of credit_hold_return.lua (its header says what each is)."""
    k, s = svc.keys, svc.settings
    keys = [
        k.credit_hold(shard, hold_id),
        k.credits(customer),
        k.credits_open(customer),
        k.credit_idempotency(customer, api_key_id, idem),
        k.events(shard),
    ]
    args: list[Any] = [
        hold_id,
        svc.now_ms(),
        svc.protocol(),
        req.amount,
        fingerprint,
        s.idempotency_ttl_s,
        req.store or "",
        req.terminal or "",
        req.reason or "",
        return_id,
        api_key_id,
        idem,
        s.final_empenho_ttl_s,
        customer,
        ledger,
    ]
    return keys, args


async def return_credit_hold(
    svc: Services, api_key_id: str, idempotency_key: str, hold_id: str, req: CreditReturnRequest
) -> Answer:
    """Return part of a COMMITTED credit hold: each centavo back to the credit it came from."""
    shard = credit_hold_shard(hold_id, svc.settings.shards)
    if shard is None:
        raise ApiError(ErrorCode.UNKNOWN_CREDIT_HOLD)
    fingerprint = lifecycle.fingerprint(b"credit-return:" + hold_id.encode() + b":", req)
    idem = await lifecycle.claim(svc, api_key_id, idempotency_key, fingerprint)
    return_id = new_return_id(shard)
    customer = await svc.redis.hget(svc.keys.credit_hold(shard, hold_id), "customer")
    res = None
    if customer is not None:
        keys, args = credit_return_call(
            svc, hold_id, shard, customer.decode(), req, api_key_id, idem, fingerprint, return_id, ""
        )
        res = await svc.run("credit_hold_return", keys, args)
    if res is None or _forgotten(res):  # Redis forgot the hold: the ledger has it
        (fields, _), current = await _from_ledger(
            svc, lambda: credit_holds.stored_record(svc, hold_id), ErrorCode.UNKNOWN_CREDIT_HOLD
        )
        ledger = _encode(fields).decode() if current else ""
        keys, args = credit_return_call(
            svc, hold_id, shard, fields["customer"], req, api_key_id, idem, fingerprint, return_id, ledger
        )
        res = await svc.run("credit_hold_return", keys, args)
        if _forgotten(res):
            raise ApiError(ErrorCode.LEDGER_UNAVAILABLE, _STORING)
    return lifecycle.placed(res, _credit_outcome)
