"""Convênios: the list and search, a convênio's page, and the form that creates or edits its whole
policy (limits, tolerance, sharing, rollover, billing, windows, stores, time zone)."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

from gateway.auth.permissions import ADMIN, READ_REGISTRY
from gateway.backoffice import format as fmt
from gateway.backoffice.pages import Screen, back, screen
from gateway.platform.clock import BRAZIL_ZONES
from gateway.registry import convenios, participants
from gateway.registry.schemas import ConvenioCreate, ConvenioUpdate

STATUSES = ("ACTIVE", "BLOCKED")


@screen(*READ_REGISTRY)
async def listing(s: Screen) -> Response:
    q, status = s.query("q"), s.query("situacao") or None
    if status not in (None, *convenios.STATUSES):
        status = None
    page = await convenios.list_convenios(s.svc, q=q or None, status=status, after=s.query("depois") or None, limit=50)
    return s.render("convenios.html", page=page, q=q, situacao=status or "", may_admin=s.can(*ADMIN))


@screen(*READ_REGISTRY)
async def show(s: Screen) -> Response:
    code = s.request.path_params["convenio"]
    conv = await convenios.get_convenio(s.svc, code)
    members = await participants.list_participants(s.svc, code, s.query("depois"), 100)
    return s.render("convenio.html", c=conv, members=members, may_admin=s.can(*ADMIN))


def _money(s: Screen, name: str, required: bool = False) -> int | None:
    text = s.field(name)
    if not text:
        if required:
            raise ValueError(f"informe {name.replace('_', ' ')}")
        return None
    try:
        return fmt.parse_brl(text)
    except ValueError:
        raise ValueError(f"{name.replace('_', ' ')}: use o formato 1.234,56") from None


def _policy(s: Screen) -> dict[str, Any]:
    """The form as the API's body (amounts typed as R$ 1.234,56, never floats)."""
    body: dict[str, Any] = {
        "name": s.field("name"),
        "total_limit": _money(s, "total_limit", required=True),
        "tolerance": _money(s, "tolerance") or 0,
        "shared": s.field("shared") == "1",
        "requires_vehicle": s.field("requires_vehicle") == "1",
        "status": s.field("status") or "ACTIVE",
        "time_zone": s.field("time_zone") or "America/Sao_Paulo",
        "stores": [c.strip().upper() for c in s.field("stores").replace(";", ",").split(",") if c.strip()],
        "rollover": {"policy": s.field("rollover_policy") or "MONTHLY"},
        "billing": {
            "automatic": s.field("billing_automatic") == "1",
            "period": s.field("billing_period") or "MONTHLY",
            "in_participant_name": s.field("billing_in_participant_name") == "1",
            "payment_method": s.field("payment_method") or "BOLETO",
            "due_days": int(s.field("due_days") or 10),
            "block_after_days": int(s.field("block_after_days") or 5),
        },
        "windows": {w: _money(s, w) for w in ("order_max", "daily_max", "monthly_max")},
    }
    if body["rollover"]["policy"] == "MONTHLY":
        body["rollover"]["day"] = int(s.field("rollover_day") or 1)
    return body


def _form(s: Screen, c: Any, erro: str, status: int, new: bool) -> Response:
    return s.render("convenio_form.html", status, c=c, new=new, erro=erro, zones=BRAZIL_ZONES)


@screen(*ADMIN)
async def new_form(s: Screen) -> Response:
    return _form(s, None, "", 200, True)


@screen(*ADMIN)
async def edit_form(s: Screen) -> Response:
    return _form(s, await convenios.get_convenio(s.svc, s.request.path_params["convenio"]), "", 200, False)


@screen(*ADMIN)
async def create(s: Screen) -> Response:
    try:
        body = msgspec.convert({"code": s.field("code").upper(), **_policy(s)}, ConvenioCreate)
    except (ValueError, msgspec.ValidationError) as exc:
        return _form(s, None, f"Dados inválidos: {exc}", 422, True)
    saved = await convenios.save_convenio(s.svc, body.code, body, by=s.actor)
    return back(f"/convenios/{saved.code}", "Convênio criado.")


@screen(*ADMIN)
async def update(s: Screen) -> Response:
    code = s.request.path_params["convenio"]
    current = await convenios.get_convenio(s.svc, code)
    try:
        fields = _policy(s)
        if fields["shared"] == current.shared:
            del fields["shared"]  # unchanged: never trips the sharing lock
        body = msgspec.convert({**fields, "reason": s.field("reason") or None}, ConvenioUpdate)
    except (ValueError, msgspec.ValidationError) as exc:
        return _form(s, current, f"Dados inválidos: {exc}", 422, False)
    await convenios.save_convenio(s.svc, code, body, by=s.actor)
    return back(f"/convenios/{code}", "Convênio alterado.")
