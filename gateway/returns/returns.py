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

from typing import Any

import msgspec

from gateway.credits import credits
from gateway.credits.schemas import CreditCreate, CreditOrigin
from gateway.holds import lifecycle
from gateway.holds.empenhos import refund_reference, stored_record
from gateway.holds.lifecycle import EMPENHO, Answer
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.ids import empenho_shard, new_return_id
from gateway.platform.services import Services
from gateway.platform.streams import stored_up_to_now
from gateway.returns.schemas import RefundCredit, ReturnOutcome, ReturnRequest

_encode = msgspec.json.Encoder().encode
LEDGER_WAIT_S = 2.0  # how long a return of a forgotten sale waits for the ledger writer


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


async def _from_ledger(svc: Services, empenho_id: str) -> tuple[tuple[dict[str, Any], list[str]], bool]:
    """The ledger's record of a sale Redis no longer holds, and whether the ledger holds every
    event appended before now (only then does it count every earlier return). An id the ledger
    has never heard of is unknown at once: a sale still on its way to the ledger is in Redis."""
    stored = await stored_record(svc, empenho_id)
    if stored is None:
        raise ApiError(ErrorCode.UNKNOWN_EMPENHO)
    if await stored_up_to_now(svc, LEDGER_WAIT_S):
        return stored, False
    return (await stored_record(svc, empenho_id)) or stored, True


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
        (fields, history), current = await _from_ledger(svc, empenho_id)
        convenio, participant = fields["convenio"], fields["participant"]
        # a ledger still storing may miss a return: then only a record another return put back
        # meanwhile is good enough
        ledger = _encode({"fields": fields, "history": history}).decode() if current else ""
        keys, args = empenho_return_call(
            svc, empenho_id, shard, convenio, participant, req, api_key_id, idem, fingerprint, return_id, ledger
        )
        res = await svc.run("empenho_return", keys, args)
        if _forgotten(res):
            raise ApiError(
                ErrorCode.LEDGER_UNAVAILABLE, "The ledger is storing the latest events; return again shortly."
            )
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
    created = await credits.create(svc, customer, credit, api_key_id)
    return RefundCredit(id=created.body.id, reference=created.body.reference)
