"""Logs: the decision log (seed 004's communication log) filtered by time range, store,
terminal, kind and outcome; each decision with what was asked and what was answered."""

from __future__ import annotations

import datetime

import msgspec
from starlette.responses import Response

from gateway.auth.permissions import READ_REGISTRY
from gateway.backoffice import format as fmt
from gateway.backoffice.pages import Screen, screen
from gateway.decisions import log as decisions
from gateway.platform.clock import local_start


def _start(text: str, days: int = 0) -> datetime.datetime | None:
    try:
        return local_start(fmt.parse_data(text) + datetime.timedelta(days=days)) if text else None
    except ValueError:
        return None


@screen(*READ_REGISTRY)
async def listing(s: Screen) -> Response:
    filters = {k: s.query(k) for k in ("de", "ate", "loja", "pdv", "tipo", "resultado", "convenio", "participante")}
    outcome = filters["resultado"] if filters["resultado"] in decisions.OUTCOMES else None
    chosen = decisions.Filter(
        start=_start(filters["de"]),
        end=_start(filters["ate"], days=1),
        store=filters["loja"][:64] or None,
        terminal=filters["pdv"][:64] or None,
        kind=filters["tipo"][:64] or None,
        outcome=outcome,
        convenio=filters["convenio"][:64] or None,
        participant=filters["participante"][:64] or None,
    )
    page = await decisions.page(s.svc, chosen, after=s.query("depois")[:64] or None, limit=50)
    return s.render("logs.html", page=page, f=filters, dump=_pretty)


def _pretty(value: object) -> str:
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()
