"""The back office's window on the duplicatas (collection bills): a convênio's, one with its lines,
and settlement (quitação), which may give the amount back to the balances; and on the month's batch
runs (job_runs), which the scheduler records."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from gateway.auth.permissions import ADMIN, READ_REGISTRY
from gateway.platform.clock import utc
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.http import params
from gateway.platform.http.endpoint import Call, Endpoint, Link, Reply
from gateway.platform.http.schemas import Out, Timestamp
from ledger.month import duplicatas, jobs
from ledger.month.schemas import DuplicataList, DuplicataView, SettleRequest

E = ErrorCode
STATUSES = ("OPEN", "PAID")
_DUPLICATA = (("duplicata", "$response.body#/id"),)


def _view(view: dict[str, Any]) -> DuplicataView:
    return msgspec.convert(view, DuplicataView)


async def list_duplicatas(c: Call) -> Reply:
    status = params.choice(c, "status", STATUSES)
    if not await c.svc.redis.exists(c.svc.keys.convenio(c.path["convenio"])):
        raise ApiError(ErrorCode.UNKNOWN_CONVENIO)
    async with c.svc.ledger.connection() as conn:
        rows = await duplicatas.listing(conn, c.path["convenio"], status, params.page_size(c))
    return Reply(DuplicataList(duplicatas=[_view(v) for v in rows]))


async def get_duplicata(c: Call) -> Reply:
    async with c.svc.ledger.connection() as conn:
        try:
            view = await duplicatas.get(conn, c.path["duplicata"], items=True)
        except duplicatas.UnknownDuplicata:
            raise ApiError(ErrorCode.UNKNOWN_DUPLICATA) from None
    return Reply(_view(view))


async def settle_duplicata(c: Call) -> Reply:
    now = utc(c.svc.now_ms())
    note = (c.body.note if c.body is not None else None) or ""
    async with c.svc.ledger.connection() as conn:
        try:
            view = await duplicatas.settle(
                c.svc, conn, c.path["duplicata"], now=now, by=f"api key {c.key_id}", note=note, ledger_wait_s=5
            )
        except duplicatas.UnknownDuplicata:
            raise ApiError(ErrorCode.UNKNOWN_DUPLICATA) from None
        except jobs.LedgerBehind as exc:
            raise ApiError(ErrorCode.LEDGER_UNAVAILABLE, f"Settled; giving the balance back waits: {exc}.") from None
        except RuntimeError as exc:  # settled, but the balances could not all be given back yet
            raise ApiError(ErrorCode.SERVICE_UNAVAILABLE, f"Settled; giving the balance back failed: {exc}.") from None
    return Reply(_view(view))


class JobRun(Out):
    """A batch run: one per (job, key), e.g. ("reconcile", "2025-11-18")."""

    job: str
    key: str
    outcome: Literal["RUNNING", "DONE", "FAILED"]
    attempts: int
    started_at: Timestamp
    counts: dict[str, Any]
    ended_at: Timestamp | None = None
    error: str | None = None
    run_by: str | None = None


class JobRunList(Out):
    runs: list[JobRun]


async def list_job_runs(c: Call) -> Reply:
    job = params.code(c, "job")
    async with c.svc.ledger.connection() as conn:
        runs = await jobs.list_runs(conn, job, params.page_size(c))
    return Reply(msgspec.convert({"runs": runs}, JobRunList))


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/v1/convenios/{convenio}/duplicatas",
        "duplicata_list",
        "The convênio's duplicatas (collection bills), newest period first.",
        list_duplicatas,
        DuplicataList,
        permissions=READ_REGISTRY,
        tag="back-office",
        errors=(E.UNKNOWN_CONVENIO, E.LEDGER_UNAVAILABLE),
        query=(
            params.choice_param("status", STATUSES, "Only the duplicatas in this status."),
            params.page_size_param("How many, 1 to 1000 (default 100)."),
        ),
        links=(
            Link("newest", "duplicata_get", (("duplicata", "$response.body#/duplicatas/0/id"),)),
            Link("settle_newest", "duplicata_settle", (("duplicata", "$response.body#/duplicatas/0/id"),)),
        ),
    ),
    Endpoint(
        "GET",
        "/v1/duplicatas/{duplicata}",
        "duplicata_get",
        "A duplicata with every sale and reversal it bills.",
        get_duplicata,
        DuplicataView,
        permissions=READ_REGISTRY,
        tag="back-office",
        errors=(E.UNKNOWN_DUPLICATA, E.LEDGER_UNAVAILABLE),
        links=(Link("settle", "duplicata_settle", _DUPLICATA),),
    ),
    Endpoint(
        "POST",
        "/v1/duplicatas/{duplicata}/settle",
        "duplicata_settle",
        "Settle (quitação) a duplicata: ON_SETTLEMENT gives its amount back to the balances, and a "
        "convênio blocked for overdue duplicatas is unblocked once none is left. Settling again "
        "answers the same.",
        settle_duplicata,
        DuplicataView,
        permissions=ADMIN,
        request=SettleRequest,
        body_optional=True,
        tag="back-office",
        errors=(E.UNKNOWN_DUPLICATA, E.LEDGER_UNAVAILABLE),
    ),
    Endpoint(
        "GET",
        "/v1/jobs",
        "job_run_list",
        "The batch runs the scheduler (or an operator) made: one per job and key (rollover, duplicatas, "
        "overdue, reconcile, ...), newest first, with its outcome, attempts and counts.",
        list_job_runs,
        JobRunList,
        permissions=READ_REGISTRY,
        tag="back-office",
        errors=(E.LEDGER_UNAVAILABLE,),
        query=(
            params.code_param("job", "Only this job's runs (rollover, duplicatas, overdue, reconcile, ...)."),
            params.page_size_param("How many, 1 to 1000 (default 100)."),
        ),
    ),
)
