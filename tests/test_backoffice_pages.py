"""The back office's pages without a browser: every page sends a visitor without a session to the
login, every action without one is 401 and changes nothing, an action without the operator's
CSRF token is 403, an operator without the permission is refused (403), and every page an
operator with every permission opens renders (200, in Portuguese)."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from gateway.auth.permissions import Permission
from gateway.backoffice.routes import routes
from gateway.operators import operators, sessions
from gateway.platform.services import Services
from ledger.writer import writer
from tests.checkout import Terminal, mint_proof

VALUES = {
    "convenio": "EMP001",
    "participant": "CLI001",
    "duplicata": "D" + "0" * 26,
    "record": "999999999",
    "request": "L" + "0" * 26,
}
ROUTES = [(m, r.path) for r in routes() for m in sorted(r.methods or ()) if m != "HEAD"]
ACTIONS = [p for m, p in ROUTES if m == "POST" and p not in ("/login",)]
PAGES = [p for m, p in ROUTES if m == "GET" and p != "/login"]


def url(path: str) -> str:
    return "/backoffice" + re.sub(r"{(\w+)(?::\w+)?}", lambda m: VALUES[m.group(1)], path)


async def signed_in(svc: Services, client: httpx.AsyncClient, login: str, *codes: Permission) -> sessions.Session:
    login = f"{login}{uuid.uuid4().hex[:8]}"  # operators live in the shared ledger database
    first = await operators.create(svc, login, frozenset(codes), by="cli:test")
    await operators.change_password(svc, login, first, "senha-nova-de-teste")
    token, session = await sessions.open_session(svc, await operators.authenticate(svc, login, "senha-nova-de-teste"))
    client.cookies.set(sessions.COOKIE_NAME, token)
    return session


@pytest.mark.parametrize("path", PAGES)
async def test_a_page_without_a_session_goes_to_the_login(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(url(path))
    assert r.status_code == 303 and r.headers["location"].startswith("/backoffice/login?next=")


@pytest.mark.parametrize("path", ACTIONS)
async def test_an_action_without_a_session_is_401(client: httpx.AsyncClient, path: str) -> None:
    r = await client.post(url(path), data={"csrf": "x"})
    assert r.status_code == 401 and "Sessão expirada" in r.text


@pytest.mark.parametrize("path", ACTIONS)
async def test_an_action_without_the_csrf_token_is_403(client: httpx.AsyncClient, svc: Services, path: str) -> None:
    await signed_in(svc, client, "semcsrf", *Permission)
    r = await client.post(url(path), data={"csrf": "not-the-token"})
    assert r.status_code == 403 and "CSRF" in r.text


async def test_an_operator_without_the_permission_is_refused(client: httpx.AsyncClient, svc: Services) -> None:
    session = await signed_in(svc, client, "leitor", Permission.CONVENIOS_READ)
    admin_only = [p for p in ACTIONS if p not in ("/sair", "/senha")]
    for path in admin_only:
        r = await client.post(url(path), data={"csrf": session.csrf})
        assert r.status_code == 403, (path, r.status_code)
        assert "Sem permissão" in r.text


async def test_every_page_renders_for_an_operator_with_every_permission(
    client: httpx.AsyncClient, svc: Services, seed: Terminal
) -> None:
    held = await seed.hold(578, proof=await mint_proof(svc, "EMP001", "CLI001"))
    assert held.status_code == 201
    await writer.drain(svc, svc.settings.database_url)
    await signed_in(svc, client, "gerente", *Permission)
    for path in PAGES:
        r = await client.get(url(path))
        if "{duplicata}" in path or "{record" in path:
            assert r.status_code == 404, (path, r.status_code)  # nobody made one
            continue
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        assert r.headers["content-type"].startswith("text/html")
        assert 'lang="pt-BR"' in r.text and "Traceback" not in r.text
        assert r.headers["cache-control"] == "no-store"
    page = await client.get(url("/convenios/{convenio}/participantes/{participant}"))
    assert "R$ 104,22" in page.text  # available: R$ 110,00 less the R$ 5,78 held


async def test_the_login_refuses_a_wrong_password_and_a_foreign_form(client: httpx.AsyncClient, svc: Services) -> None:
    login = f"visitante{uuid.uuid4().hex[:8]}"
    await operators.create(svc, login, frozenset({Permission.CONVENIOS_READ}), by="cli:test")
    form = await client.get("/backoffice/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    wrong = await client.post("/backoffice/login", data={"login": login, "senha": "errada", "csrf": csrf})
    assert wrong.status_code == 401 and "Login ou senha incorretos." in wrong.text
    client.cookies.clear()
    foreign = await client.post("/backoffice/login", data={"login": login, "senha": "x", "csrf": csrf})
    assert foreign.status_code == 403
    assert sessions.COOKIE_NAME not in foreign.cookies


async def test_an_operator_creates_and_edits_a_convenio_and_blocks_and_resets_a_participant(
    client: httpx.AsyncClient, svc: Services, seed: Terminal
) -> None:
    session = await signed_in(svc, client, "gestor", *Permission)
    code = f"BO{uuid.uuid4().hex[:6].upper()}"
    form = {
        "csrf": session.csrf,
        "code": code,
        "name": "EMPRESA DA RETAGUARDA",
        "total_limit": "1.500,00",
        "tolerance": "10,00",
        "rollover_policy": "MONTHLY",
        "rollover_day": "5",
        "billing_period": "DAILY",
        "daily_max": "300,00",
        "time_zone": "America/Manaus",
    }
    made = await client.post("/backoffice/convenios", data=form)
    assert made.status_code == 303, made.text[:300]
    shown = await client.get(made.headers["location"])
    assert "EMPRESA DA RETAGUARDA" in shown.text and "R$ 1.500,00" in shown.text and "America/Manaus" in shown.text
    edited = await client.post(
        f"/backoffice/convenios/{code}", data={**form, "total_limit": "2.000,00", "reason": "novo contrato"}
    )
    assert edited.status_code == 303
    assert "R$ 2.000,00" in (await client.get(f"/backoffice/convenios/{code}")).text
    bad = await client.post("/backoffice/convenios", data={**form, "code": code + "X", "total_limit": "1,234.56"})
    assert bad.status_code == 422 and "1.234,56" in bad.text

    page = "/backoffice/convenios/EMP001/participantes/CLI001"
    blocked = await client.post(page + "/situacao", data={"csrf": session.csrf, "acao": "bloquear", "motivo": "fraude"})
    assert blocked.status_code == 303
    assert (await seed.limit()).json()["status"] == "BLOCKED"
    await client.post(page + "/situacao", data={"csrf": session.csrf, "acao": "desbloquear", "motivo": "resolvido"})
    reset = await client.post(page + "/senha", data={"csrf": session.csrf})
    new = re.search(r'id="nova-senha">(\d{6})<', reset.text).group(1)
    assert (await seed.check_password(password=new)).json()["valid"] is True
    await writer.drain(svc, svc.settings.database_url)
    async with svc.ledger.connection() as conn:
        actors = {r["actor"] for r in await conn.fetch("SELECT actor FROM audit_log WHERE target LIKE $1", f"%{code}%")}
    assert actors == {sessions.actor(session)}


async def test_running_the_records_ticked_names_a_record_nobody_made(client: httpx.AsyncClient, svc: Services) -> None:
    session = await signed_in(svc, client, "tesouraria", *Permission)
    r = await client.post("/backoffice/conciliacao/executar", data={"csrf": session.csrf, "registro": ["999999999"]})
    assert r.status_code == 422 and "999999999" in r.text
