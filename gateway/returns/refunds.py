"""Refunds a return promised as the customer's credit and whose credit was never made.

A return refunded as CREDIT is decided by empenho_return.lua in the convênio's keys; its DEVOLUCAO
credit is then made by credit_create.lua in the customer's keys (two scripts: the keys live apart).
A gateway dying between the two leaves a return with no credit until its client retries the
return (the retry replays it and makes the credit). So every gateway worker also looks, now and
then, in the ledger for such returns older than a grace period, and makes their credits: the
same reference and values the return would have made, so whoever comes first makes it and the
other replays it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.exceptions import RedisError

from gateway.credits import credits
from gateway.credits.schemas import CreditCreate, CreditOrigin
from gateway.platform.errors import ApiError
from gateway.platform.services import Services

log = logging.getLogger("convenio.refunds")
GRACE_S = 60  # a return younger than this may still be making its credit
INTERVAL_S = 60.0
BATCH = 200

UNREFUNDED = """
SELECT r.id, r.empenho_id, r.amount, r.store, r.terminal, r.credit_reference, r.api_key_id,
       e.participant, e.order_ref
FROM empenho_returns r JOIN empenhos e ON e.id = r.empenho_id
WHERE r.refund = 'CREDIT' AND r.at < now() - make_interval(secs => $1)
  AND NOT EXISTS (SELECT 1 FROM credits c WHERE c.customer = e.participant AND c.reference = r.credit_reference)
ORDER BY r.at
LIMIT $2
"""


async def unrefunded(svc: Services, grace_s: float = GRACE_S) -> list[dict]:
    """The returns refunded as CREDIT older than `grace_s` whose credit the ledger does not hold."""
    return [dict(r) for r in await svc.ledger.fetch(UNREFUNDED, grace_s, BATCH)]


async def refund_once(svc: Services, grace_s: float = GRACE_S) -> int:
    """Make the credit of every such return; returns how many were made."""
    made = 0
    for r in await unrefunded(svc, grace_s):
        credit = CreditCreate(
            reference=r["credit_reference"],
            type="DEVOLUCAO",
            amount=r["amount"],
            origin=CreditOrigin(channel="STORE", store=r["store"], terminal=r["terminal"], order=r["order_ref"]),
        )
        answer = await credits.create(svc, r["participant"], credit, r["api_key_id"], (r["id"], r["empenho_id"]))
        if not answer.replayed:
            made += 1
            log.warning("made the DEVOLUCAO credit of return %s, which its request never made", r["id"])
    return made


async def run(svc: Services, stopping: asyncio.Event) -> None:
    """Refund every interval until `stopping` is set."""
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), INTERVAL_S)
        if stopping.is_set():
            break
        try:
            await refund_once(svc)
        except (ApiError, RedisError) as exc:  # the ledger or Redis unavailable: next time
            log.warning("refunds skipped: %s", type(exc).__name__)
