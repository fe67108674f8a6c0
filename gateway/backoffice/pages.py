"""What every screen of the back office shares: the operator's session (a cookie, HttpOnly and
SameSite=Strict, Secure under TLS), the permission a screen or an action needs, the CSRF token
every form carries, the templates, and errors shown in Portuguese instead of JSON.

A GET without a session goes to the login page; a POST without one, or with a wrong CSRF token,
is refused (401 / 403) and changes nothing. An operator who must change the first password sees
only the page that changes it. Every action is done by the feature functions the HTTP API calls,
recorded under `operator:<login>`.
"""

from __future__ import annotations

import functools
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.auth.permissions import Permission
from gateway.backoffice import format as fmt
from gateway.operators import sessions
from gateway.operators.sessions import Session
from gateway.platform.errors import ApiError
from gateway.platform.services import Services

log = logging.getLogger("convenio.backoffice")

BASE = "/backoffice"
TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("gateway.backoffice", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters.update(brl=fmt.brl, data=fmt.data, data_hora=fmt.data_hora)
TEMPLATES.globals.update(BASE=BASE, P=Permission)

#: what an error code says to an operator (the API's English message otherwise)
MENSAGENS = {
    "OPERATOR_LOGIN_FAILED": "Login ou senha incorretos.",
    "OPERATOR_LOCKED": "Acesso bloqueado por excesso de tentativas. Tente novamente mais tarde.",
    "INVALID_REQUEST": "Dados inválidos.",
    "UNKNOWN_CONVENIO": "Convênio não encontrado.",
    "UNKNOWN_PARTICIPANT": "Participante não encontrado.",
    "UNKNOWN_EMPENHO": "Empenho não encontrado.",
    "EMPENHO_NOT_PENDING": "O empenho não está mais pendente.",
    "UNKNOWN_DUPLICATA": "Duplicata não encontrada.",
    "LIMIT_REQUEST_DECIDED": "A solicitação já foi decidida.",
    "LIMIT_ALLOCATION_EXCEEDED": "O limite ultrapassa o limite total do convênio.",
    "CONVENIO_EXISTS": "Já existe um convênio com este código.",
    "PARTICIPANT_EXISTS": "Já existe um participante com este código.",
    "SHARING_MODE_LOCKED": "O modo de compartilhamento não pode mais ser alterado.",
    "UNKNOWN_STORE": "Loja não cadastrada.",
    "STORE_NOT_REGISTERED": "Loja não cadastrada.",
    "LEDGER_UNAVAILABLE": "O banco de dados do razão está indisponível; tente novamente.",
    "SERVICE_UNAVAILABLE": "O serviço está indisponível; tente novamente.",
    "FULLY_RETURNED": "A venda já foi devolvida por inteiro.",
}


def mensagem(exc: ApiError) -> str:
    return MENSAGENS.get(str(exc.code), exc.message)


@dataclass
class Screen:
    """One request to a screen: the operator's session, the services, the form (on a POST)."""

    request: Request
    svc: Services
    session: Session
    form: dict[str, str] = field(default_factory=dict)
    uploads: dict[str, Any] = field(default_factory=dict)  # a form's files (UploadFile)
    checked: dict[str, list[str]] = field(default_factory=dict)  # fields sent more than once (checkboxes)

    @property
    def actor(self) -> str:
        return sessions.actor(self.session)

    def can(self, *codes: Permission) -> bool:
        return sessions.allows(self.session, frozenset(codes))

    def query(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default).strip()

    def field(self, name: str, default: str = "") -> str:
        return self.form.get(name, default).strip()

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return render(self.request, template, status, session=self.session, **values)


def render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    values.setdefault("session", None)
    values.setdefault("aviso", request.query_params.get("aviso", ""))
    values.setdefault("erro", "")
    html = TEMPLATES.get_template(template).render(**values)
    headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"}
    headers["Content-Security-Policy"] = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"
    return HTMLResponse(html, status_code=status, headers=headers)


def back(path: str, aviso: str = "") -> RedirectResponse:
    """After an action: back to a screen (303, so a reload does not repeat it), with a notice."""
    target = BASE + path + (("&" if "?" in path else "?") + urllib.parse.urlencode({"aviso": aviso}) if aviso else "")
    return RedirectResponse(target, status_code=303)


def services(request: Request) -> Services:
    return request.app.state.services


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


async def current(request: Request) -> Session | None:
    token = request.cookies.get(sessions.COOKIE_NAME)
    if not token or len(token) > 200:
        return None
    return await sessions.lookup(services(request), token)


Handler = Callable[[Screen], Awaitable[Response]]


def screen(*needed: Permission, change_password_page: bool = False) -> Callable[[Handler], Callable]:
    """A screen or an action that needs one of these permissions (none: any operator)."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            try:
                session = await current(request)
            except ApiError as exc:
                return render(request, "erro.html", exc.status, erro=mensagem(exc))
            post = request.method == "POST"
            if session is None:
                if post:
                    return render(request, "erro.html", 401, erro="Sessão expirada: entre novamente.")
                next_ = urllib.parse.quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
                return RedirectResponse(f"{BASE}/login?next={next_}", status_code=303)
            if session.must_change_password and not change_password_page:
                return RedirectResponse(f"{BASE}/senha", status_code=303)
            if needed and not sessions.allows(session, frozenset(needed)):
                return render(request, "erro.html", 403, session=session, erro="Sem permissão para esta ação.")
            form: dict[str, str] = {}
            if post:
                raw = await request.form()
                form = {k: v for k, v in raw.items() if isinstance(v, str)}
                if not sessions.csrf_ok(session, form.get("csrf", "")):
                    return render(request, "erro.html", 403, session=session, erro="Formulário inválido (CSRF).")
                files = {k: v for k, v in raw.items() if not isinstance(v, str)}
                lists = {k: [v for v in raw.getlist(k) if isinstance(v, str)] for k in raw}
                s = Screen(request, services(request), session, form, files, lists)
            else:
                s = Screen(request, services(request), session)
            try:
                return await handler(s)
            except ApiError as exc:
                return s.render("erro.html", exc.status, erro=mensagem(exc))

        return endpoint

    return wrap
