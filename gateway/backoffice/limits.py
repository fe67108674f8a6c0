"""Solicitações de limite: every participant's open requests as one worklist, urgent first;
approve (possibly for another amount) or reject with a reason."""

from __future__ import annotations

from starlette.responses import Response

from gateway.auth.permissions import ADMIN, READ_REGISTRY
from gateway.backoffice import format as fmt
from gateway.backoffice.pages import Screen, back, screen
from gateway.registry import limit_requests
from gateway.registry.schemas import LimitRequestApprove, LimitRequestReject


@screen(*READ_REGISTRY)
async def worklist(s: Screen) -> Response:
    page = await limit_requests.worklist(s.svc, status="PENDING", after=s.query("depois") or None, limit=100)
    return s.render("solicitacoes.html", page=page, may_decide=s.can(*ADMIN))


@screen(*ADMIN)
async def approve(s: Screen) -> Response:
    request_id = s.request.path_params["request"]
    text = s.field("limite")
    try:
        limit = fmt.parse_brl(text) if text else None
    except ValueError:
        return s.render("erro.html", 422, erro="Limite: use o formato 1.234,56.")
    body = LimitRequestApprove(limit=limit, reason=s.field("motivo")[:256] or None)
    done = await limit_requests.approve(s.svc, request_id, body, by=s.actor)
    return back("/solicitacoes", f"Solicitação de {done.participant} aprovada: limite {fmt.brl(done.approved_limit)}.")


@screen(*ADMIN)
async def reject(s: Screen) -> Response:
    request_id = s.request.path_params["request"]
    reason = s.field("motivo")
    if not reason:
        return s.render("erro.html", 422, erro="Informe o motivo da recusa.")
    done = await limit_requests.reject(s.svc, request_id, LimitRequestReject(reason=reason[:256]), by=s.actor)
    return back("/solicitacoes", f"Solicitação de {done.participant} recusada.")
