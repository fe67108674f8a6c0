"""Duplicatas: by state and due date, a duplicata with its lines, and its settlement (quitação)."""

from __future__ import annotations

from starlette.responses import Response

from gateway.auth.permissions import ADMIN, READ_REGISTRY
from gateway.backoffice.pages import Screen, back, screen
from gateway.platform.clock import utc
from gateway.platform.errors import ApiError, ErrorCode
from ledger.month import duplicatas, jobs

STATES = ("OPEN", "PAID")


@screen(*READ_REGISTRY)
async def listing(s: Screen) -> Response:
    status = s.query("situacao") or None
    convenio = s.query("convenio") or None
    if status not in (None, *STATES):
        status = None
    async with s.svc.ledger.connection() as conn:
        found = await duplicatas.listing(conn, convenio, status, 200)
    found.sort(key=lambda d: (d["status"] != "OPEN", d["due_date"], d["id"]))
    return s.render("duplicatas.html", found=found, situacao=status or "", convenio=convenio or "", states=STATES)


@screen(*READ_REGISTRY)
async def show(s: Screen) -> Response:
    async with s.svc.ledger.connection() as conn:
        try:
            dup = await duplicatas.get(conn, s.request.path_params["duplicata"], items=True)
        except duplicatas.UnknownDuplicata:
            raise ApiError(ErrorCode.UNKNOWN_DUPLICATA) from None
    return s.render("duplicata.html", d=dup, may_settle=s.can(*ADMIN))


@screen(*ADMIN)
async def settle(s: Screen) -> Response:
    dup_id = s.request.path_params["duplicata"]
    async with s.svc.ledger.connection() as conn:
        try:
            await duplicatas.settle(
                s.svc, conn, dup_id, now=utc(s.svc.now_ms()), by=s.actor, note=s.field("nota")[:256], ledger_wait_s=5
            )
        except duplicatas.UnknownDuplicata:
            raise ApiError(ErrorCode.UNKNOWN_DUPLICATA) from None
        except jobs.LedgerBehind:
            return back(f"/duplicatas/{dup_id}", "Quitada; a devolução do saldo aguarda o razão (tente de novo).")
    return back(f"/duplicatas/{dup_id}", "Duplicata quitada.")
