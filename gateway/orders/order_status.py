"""The ERP's order statuses: the ERP posts order status changes; a status in the
commit set commits the order's pending holds, one in the cancel set cancels them; whether that
changes the convênio balance is the `update_balance` parameter (the ERP's alterasaldo).

The rules, per hold of the order (credit holds over customer credits, and empenhos):

- a commit status: a PENDING credit hold is COMMITTED (`committed`); a PENDING empenho is
  COMMITTED (`committed`) when update_balance is on, else CANCELLED (`released`).
- a cancel status: a PENDING hold (credit hold or empenho) is CANCELLED (`cancelled`); a
  COMMITTED credit hold is REVERSED (`reversed`), and so is a COMMITTED empenho when
  update_balance is on (else it is kept: `unchanged`). Reversing takes what the hold's returns
  left (one returned whole is `unchanged`), also of a hold Redis no longer keeps: the cancel
  brings it back from the ledger.
- any other status, or a hold already past what the status would change: `unchanged`.

`update_balance` false means the ERP keeps the convênio balance itself: processing only
releases the holds the checkout placed (the ERP's "liberar a reserva"), recorded as processed
(the empenho is CANCELLED with a reason that says so) and never debits or credits a balance.
It does not apply to customer credits: those are the gateway's own account, and an order
that used them consumed them (see docs/credits.md).

Idempotency: each hold's commit or cancel is its own idempotent script (a retry replays), and
the report of an (order, status) that changed something is kept (order_status_record.lua):
posting it again answers that report and moves nothing. An order with no hold at all is
UNKNOWN_ORDER (not kept: posting it later, once the holds exist, processes it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass

import msgspec

from gateway.credits import holds as credit_holds
from gateway.holds import empenhos
from gateway.holds.lifecycle import Answer
from gateway.holds.schemas import CancelRequest, CommitRequest
from gateway.orders.orders import CreditHoldState, EmpenhoState, OrderHolds, find
from gateway.orders.schemas import (
    OrderStatusBatch,
    OrderStatusError,
    OrderStatusParams,
    OrderStatusParamsView,
    OrderStatusReport,
    OrderStatusResult,
)
from gateway.platform.clock import rfc3339
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.http.params import invalid
from gateway.platform.services import Services
from gateway.platform.streams import stored_up_to_now

DEFAULT_COMMIT = ("PF",)  # the ERP's processamovimento
DEFAULT_CANCEL = ("PC",)  # the ERP's inativamovimento
DEFAULT_UPDATE_BALANCE = False  # the ERP's alterasaldo = 0
CONCURRENCY = 8  # orders processed at once within a batch

_result_decoder = msgspec.json.Decoder(OrderStatusResult)
_encode = msgspec.json.Encoder().encode

LEDGER_WAIT_S = 2.0  # how long a post waits for the ledger writer to store the latest holds


@dataclass(frozen=True)
class Params:
    commit: tuple[str, ...]
    cancel: tuple[str, ...]
    update_balance: bool
    updated_at: int | None = None

    def action(self, status: str) -> str:
        if status in self.commit:
            return "COMMIT"
        if status in self.cancel:
            return "CANCEL"
        return "NONE"


def _split(raw: bytes | None) -> tuple[str, ...]:
    return tuple(s for s in (raw or b"").decode().split(",") if s)


async def params(svc: Services) -> Params:
    raw = await svc.redis.hgetall(svc.keys.order_status_params())
    if not raw:
        return Params(DEFAULT_COMMIT, DEFAULT_CANCEL, DEFAULT_UPDATE_BALANCE)
    return Params(
        _split(raw.get(b"commit")),
        _split(raw.get(b"cancel")),
        raw.get(b"update_balance") == b"1",
        int(raw[b"updated_at"]) if b"updated_at" in raw else None,
    )


def _view(p: Params) -> OrderStatusParamsView:
    view = OrderStatusParamsView(
        commit_statuses=list(p.commit), cancel_statuses=list(p.cancel), update_balance=p.update_balance
    )
    if p.updated_at is not None:
        view.updated_at = rfc3339(p.updated_at)
    return view


async def get_params(svc: Services) -> OrderStatusParamsView:
    return _view(await params(svc))


def _unique(statuses: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(statuses))


async def set_params(svc: Services, req: OrderStatusParams, by: str) -> OrderStatusParamsView:
    commit, cancel = _unique(req.commit_statuses), _unique(req.cancel_statuses)
    both = sorted(set(commit) & set(cancel))
    if both:
        raise invalid("cancel_statuses", f"A status cannot both commit and cancel: {', '.join(both)}.")
    k = svc.keys
    now = svc.now_ms()
    await svc.run(
        "order_status_set",
        [k.order_status_params(), k.events("g")],
        [now, svc.protocol(), ",".join(commit), ",".join(cancel), "1" if req.update_balance else "0", by],
    )
    return _view(Params(commit, cancel, req.update_balance, now))


# --- processing ------------------------------------------------------------------------------
@dataclass
class _Outcome:
    committed: list[str]
    released: list[str]
    cancelled: list[str]
    reversed: list[str]
    unchanged: list[str]
    error: ApiError | None = None

    def put(self, category: str, hold_id: str) -> None:
        getattr(self, category).append(hold_id)

    def failed(self, hold_id: str, exc: ApiError) -> None:
        self.unchanged.append(hold_id)
        if self.error is None:
            self.error = exc


#: refusals that only mean the hold is no longer what the status would change (no error)
_SETTLED = {
    ErrorCode.CREDIT_HOLD_NOT_PENDING,
    ErrorCode.CREDIT_COMMIT_CONFLICT,
    ErrorCode.EMPENHO_NOT_PENDING,
    ErrorCode.COMMIT_CONFLICT,
    ErrorCode.FULLY_RETURNED,
}


async def _apply(svc: Services, order: str, status: str, p: Params, holds: OrderHolds) -> _Outcome:
    action = p.action(status)
    out = _Outcome([], [], [], [], [])
    reason = f"order {order}: status {status}"
    step: Awaitable[tuple[str, str]] | None
    for h in sorted(holds.credit_holds.values(), key=lambda h: (h.created_at, h.id)):
        if action == "COMMIT" and h.status == "PENDING":
            step = _moved(credit_holds.commit(svc, h.id, CommitRequest(coupon=order)), "committed")
        elif action == "CANCEL" and h.status in ("PENDING", "COMMITTED"):
            step = _moved(credit_holds.cancel(svc, h.id, CancelRequest(reason=reason)))
        else:
            step = None
        await _step(out, h, step)
    for e in holds.empenhos.values():
        if action == "COMMIT" and e.status == "PENDING" and p.update_balance:
            step = _moved(empenhos.commit(svc, e.id, CommitRequest(coupon=order)), "committed")
        elif action == "COMMIT" and e.status == "PENDING":
            release = CancelRequest(reason=f"{reason} processed without a balance change (update_balance off)")
            step = _moved(empenhos.cancel(svc, e.id, release, keep_windows=True), "released")
        elif action == "CANCEL" and (e.status == "PENDING" or (e.status == "COMMITTED" and p.update_balance)):
            step = _moved(empenhos.cancel(svc, e.id, CancelRequest(reason=reason)))
        else:
            step = None
        await _step(out, e, step)
    return out


async def _moved(answer: Awaitable[Answer], category: str | None = None) -> tuple[str, str]:
    """What a hold's commit or cancel did: its category in the report, and its new status (a
    cancel's category is its status: cancelled when it was pending, reversed when committed)."""
    status = (await answer).body.status
    return category or ("cancelled" if status == "CANCELLED" else "reversed"), status


async def _step(out: _Outcome, hold: CreditHoldState | EmpenhoState, step: Awaitable[tuple[str, str]] | None) -> None:
    """One hold of the order: moved by `step`, or unchanged (no step, or a refusal that only says
    the hold is past what the status would change); any other refusal is the order's error."""
    if step is None:
        out.put("unchanged", hold.id)
        return
    try:
        category, hold.status = await step
        out.put(category, hold.id)
    except ApiError as exc:
        if exc.code in _SETTLED:
            out.put("unchanged", hold.id)
        else:
            out.failed(hold.id, exc)


def _result(order: str, status: str, p: Params, out: _Outcome | None, error: ApiError | None) -> OrderStatusResult:
    out = out or _Outcome([], [], [], [], [])
    result = OrderStatusResult(
        order=order,
        status=status,
        action=p.action(status),  # type: ignore[arg-type]
        update_balance=p.update_balance,
        committed=out.committed,
        released=out.released,
        cancelled=out.cancelled,
        reversed=out.reversed,
        unchanged=out.unchanged,
    )
    error = error or out.error
    if error is not None:
        result.error = OrderStatusError(code=error.code, message=error.message)
    return result


async def _record(svc: Services, result: OrderStatusResult) -> OrderStatusResult:
    """Keep the report; a concurrent processing that recorded first wins (its report is answered)."""
    k = svc.keys
    res = await svc.run(
        "order_status_record",
        [k.order_status_results(result.order), k.events("g")],
        [svc.now_ms(), svc.protocol(), result.order, result.status, _encode(result), svc.settings.idempotency_ttl_s],
    )
    return _result_decoder.decode(res["r"]["report"])


async def process(svc: Services, batch: OrderStatusBatch) -> OrderStatusReport:
    """Process a batch of order statuses; one result per item, in the batch's order."""
    p = await params(svc)
    items = [(i.order, i.status) for i in batch.orders]
    orders = list(dict.fromkeys(o for o, _ in items))
    k = svc.keys
    async with svc.redis.pipeline(transaction=False) as pipe:
        for o in orders:
            pipe.hgetall(k.order_status_results(o))
        kept_raw = await pipe.execute()
    kept: dict[tuple[str, str], OrderStatusResult] = {
        (o, s.decode()): _result_decoder.decode(v)
        for o, raw in zip(orders, kept_raw, strict=True)
        for s, v in raw.items()
    }
    todo = [o for o in orders if any((o, s) not in kept for oo, s in items if oo == o)]
    # an order's empenhos are found in Postgres: every hold placed before this post must be
    # stored first. Behind, or Postgres down: nothing is processed, the whole batch is 503 and
    # the ERP posts it again
    if todo and await stored_up_to_now(svc, LEDGER_WAIT_S):
        raise ApiError(ErrorCode.LEDGER_UNAVAILABLE, "The ledger is storing the latest holds; post again shortly.")
    holds = await find(svc, todo) if todo else {}
    results: dict[int, OrderStatusResult] = {}
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one_order(order: str) -> None:
        async with gate:
            for n, (o, status) in enumerate(items):
                if o != order:
                    continue
                if (o, status) in kept:
                    results[n] = kept[(o, status)]
                    continue
                h = holds[o]
                if h.empty:
                    results[n] = _result(o, status, p, None, ApiError(ErrorCode.UNKNOWN_ORDER))
                    continue
                out = await _apply(svc, o, status, p, h)
                result = _result(o, status, p, out, None)
                moved = out.committed or out.released or out.cancelled or out.reversed
                # a report that moved nothing is not kept: a hold placed later for the order is
                # processed by the next post
                if result.action != "NONE" and out.error is None and moved:
                    result = await _record(svc, result)
                    kept[(o, status)] = result
                results[n] = result

    await asyncio.gather(*(one_order(o) for o in orders))
    return OrderStatusReport(orders=[results[n] for n in range(len(items))])
