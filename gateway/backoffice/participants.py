"""Participantes: the search (by code, name or CPF, across convênios) and a participant's page:
limit, balance, reserved, valor líquido, the pending empenhos (cancel), sales and returns,
movements, history, vehicles, the password reset, block and unblock with a reason."""

from __future__ import annotations

import secrets

from starlette.responses import Response

from gateway.audit import log as audit
from gateway.auth.permissions import ADMIN, READ_REGISTRY, Permission
from gateway.backoffice import reads
from gateway.backoffice.pages import Screen, back, screen
from gateway.holds import empenhos
from gateway.holds.schemas import CancelRequest
from gateway.platform import documents
from gateway.platform.errors import ApiError, ErrorCode
from gateway.registry import convenios, history, movements, participants, vehicles
from gateway.registry.schemas import ParticipantUpdate

#: who may cancel a pending empenho from the back office: as over the API, and the admin
CANCEL = frozenset({Permission.EMPENHO_CANCEL, Permission.ADMIN})


def _looks_like_document(q: str) -> bool:
    try:
        documents.checked(q)
    except documents.InvalidDocument:
        return False
    return True


@screen(*READ_REGISTRY)
async def search(s: Screen) -> Response:
    q = s.query("q")
    found: list = []
    if q and _looks_like_document(q):
        found = (await participants.search(s.svc, q)).participants
    elif q:
        found = (await participants.find_participants(s.svc, q=q[:100], limit=50)).participants
    return s.render("participantes.html", q=q, found=found)


@screen(*READ_REGISTRY)
async def show(s: Screen) -> Response:
    c, p = s.request.path_params["convenio"], s.request.path_params["participant"]
    conv = await convenios.get_convenio(s.svc, c)
    part = await participants.get_participant(s.svc, c, p)
    sales = await reads.empenhos(s.svc, c, p)
    return s.render(
        "participante.html",
        c=conv,
        p=part,
        tz=conv.time_zone,
        available=part.balance + conv.tolerance - part.reserved,
        liquido=part.balance - part.reserved,
        pending=[e for e in sales if e["status"] == "PENDING"],
        sales=[e for e in sales if e["status"] != "PENDING"],
        moves=(await movements.page(s.svc, c, p, None, None, 0, 20)).movements,
        changes=(await history.history(s.svc, c, p, None, 20)).history,
        vehicles=(await vehicles.list_vehicles(s.svc, c, p)).vehicles,
        may_cancel=s.can(*CANCEL),
        may_admin=s.can(*ADMIN),
    )


def _page(c: str, p: str) -> str:
    return f"/convenios/{c}/participantes/{p}"


@screen(*CANCEL)
async def cancel_empenho(s: Screen) -> Response:
    c, p = s.request.path_params["convenio"], s.request.path_params["participant"]
    empenho_id = s.field("empenho")
    reason = s.field("motivo") or "cancelado na retaguarda"
    held = await empenhos.get(s.svc, empenho_id)
    if (held.convenio, held.participant) != (c, p):
        raise ApiError(ErrorCode.UNKNOWN_EMPENHO)
    answer = await empenhos.cancel(s.svc, empenho_id, CancelRequest(reason=reason[:256]))
    if answer.status >= 400:
        error = answer.body.get("error", {}) if isinstance(answer.body, dict) else {}
        return s.render("erro.html", answer.status, erro=error.get("message", "Não foi possível cancelar."))
    async with s.svc.ledger.connection() as conn:
        await audit.record(
            conn,
            actor=s.actor,
            action="empenho.cancelled",
            target=f"participant {c}/{p}",
            before={"empenho": empenho_id, "status": held.status, "amount": held.amount},
            after={"empenho": empenho_id, "status": "CANCELLED", "reason": reason[:256]},
        )
    return back(_page(c, p), f"Empenho {empenho_id} cancelado.")


@screen(*ADMIN)
async def set_status(s: Screen) -> Response:
    c, p = s.request.path_params["convenio"], s.request.path_params["participant"]
    status = "BLOCKED" if s.field("acao") == "bloquear" else "ACTIVE"
    reason = s.field("motivo")
    if not reason:
        return s.render("erro.html", 422, erro="Informe o motivo.")
    body = ParticipantUpdate(status=status, reason=reason[:256])  # type: ignore[arg-type]
    await participants.save_participant(s.svc, c, p, body, by=s.actor)
    return back(_page(c, p), "Participante bloqueado." if status == "BLOCKED" else "Participante desbloqueado.")


@screen(*ADMIN)
async def reset_password(s: Screen) -> Response:
    """A new password for the participant, shown once to the operator (who hands it over)."""
    c, p = s.request.path_params["convenio"], s.request.path_params["participant"]
    password = f"{secrets.randbelow(10**6):06d}"
    body = ParticipantUpdate(password=password, reason="senha redefinida na retaguarda")
    await participants.save_participant(s.svc, c, p, body, by=s.actor)
    part = await participants.get_participant(s.svc, c, p)
    return s.render("senha_participante.html", p=part, password=password)
