"""Entering and leaving the back office: the login form, the first password's change, logout.

The login form carries its own CSRF token (a cookie and the same value in the form), so a page
elsewhere cannot log a browser in under another operator's name."""

from __future__ import annotations

import secrets
import urllib.parse

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.backoffice.pages import BASE, Screen, current, mensagem, render, screen, secure, services
from gateway.operators import operators, sessions
from gateway.platform.errors import ApiError

_LOGIN_CSRF = "cv_login"


def _next(raw: str) -> str:
    """Only a path of the back office itself (never another site)."""
    path = urllib.parse.unquote(raw or "")
    if not path.startswith(BASE + "/") or path.startswith("//") or "\\" in path:
        return BASE + "/"
    return path


async def login_form(request: Request) -> Response:
    if await current(request) is not None:
        return RedirectResponse(BASE + "/", status_code=303)
    return _login_page(request, "", 200)


def _login_page(request: Request, erro: str, status: int) -> Response:
    token = secrets.token_urlsafe(24)
    page = render(request, "login.html", status, erro=erro, csrf=token, next=request.query_params.get("next", ""))
    page.set_cookie(_LOGIN_CSRF, token, httponly=True, samesite="strict", secure=secure(request), path=BASE)
    return page


async def login(request: Request) -> Response:
    form = await request.form()
    login_, password = str(form.get("login", "")).strip(), str(form.get("senha", ""))
    cookie = request.cookies.get(_LOGIN_CSRF, "")
    if not cookie or not secrets.compare_digest(cookie, str(form.get("csrf", ""))):
        return _login_page(request, "Formulário expirado: tente novamente.", 403)
    svc = services(request)
    try:
        operator = await operators.authenticate(svc, login_, password)
        token, _ = await sessions.open_session(svc, operator)
    except ApiError as exc:
        return _login_page(request, mensagem(exc), exc.status)
    target = BASE + "/senha" if operator.must_change_password else _next(str(form.get("next", "")))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(sessions.COOKIE_NAME, token, **sessions.cookie_options(secure(request)))
    response.delete_cookie(_LOGIN_CSRF, path=BASE)
    return response


@screen(change_password_page=True)
async def logout(s: Screen) -> Response:
    token = s.request.cookies.get(sessions.COOKIE_NAME, "")
    await sessions.close(s.svc, token)
    response = RedirectResponse(BASE + "/login", status_code=303)
    response.delete_cookie(sessions.COOKIE_NAME, path=BASE)
    return response


@screen(change_password_page=True)
async def password_form(s: Screen) -> Response:
    return s.render("senha.html")


@screen(change_password_page=True)
async def change_password(s: Screen) -> Response:
    new, again = s.form.get("nova", ""), s.form.get("confirmacao", "")
    if new != again:
        return s.render("senha.html", 422, erro="A confirmação não confere com a nova senha.")
    try:
        await operators.change_password(s.svc, s.session.login, s.form.get("atual", ""), new)
    except ApiError as exc:
        return s.render("senha.html", exc.status, erro=mensagem(exc))
    # every session of the operator ends with the old password: log in again with the new one
    await sessions.close_all(s.svc, s.session.login)
    response = RedirectResponse(BASE + "/login?aviso=Senha+alterada.+Entre+com+a+nova+senha.", status_code=303)
    response.delete_cookie(sessions.COOKIE_NAME, path=BASE)
    return response
