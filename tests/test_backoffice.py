"""The back office in a real browser: Playwright driving Debian's Chromium (never a downloaded
one) against `convenio serve`, as an operator uses it. Each scenario leaves a screenshot of the
screens it saw under build/screenshots/ (not committed).

- log in (the first password, then a new one), find CLIENTE 001 by name and see R$ 110,00;
- cancel a pending empenho from the participant's page;
- settle a duplicata;
- upload a closing file: one record Conciliado, one Não conciliado;
- approve a limit request for another amount;
- an operator with 603 alone sees no settle button, and a forged POST is refused.
"""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from gateway.auth.permissions import Permission
from gateway.operators import operators
from gateway.platform.config import Settings
from gateway.platform.services import Services
from ledger.month import duplicatas
from ledger.writer import writer
from tests.checkout import BackOffice, Terminal, mint_proof
from tests.conftest import _prefixes
from tests.served import module_settings, serving

CLI = [sys.executable, "-m", "ledger.cli"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[1] / "build" / "screenshots"
NEW_PASSWORD = "nova-senha-da-retaguarda"
ADMIN_CODES = frozenset(Permission)

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def settings(redis_url: str, shared_ledger_url: str) -> Settings:
    return module_settings(redis_url, shared_ledger_url, "bo")


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[str]:
    """`convenio serve` for the module; yields its back office's address."""
    with serving(settings) as port:
        yield f"http://127.0.0.1:{port}/backoffice"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


class Operator:
    """Someone of the back office, in a browser of their own."""

    def __init__(self, page: Page, base: str) -> None:
        self.page, self.base = page, base

    async def go(self, path: str) -> None:
        await self.page.goto(self.base + path)

    async def log_in(self, login: str, password: str) -> None:
        await self.go("/login")
        await self.page.fill("#login", login)
        await self.page.fill("#senha", password)
        await self.page.click("main button[type=submit]")

    async def first_login(self, login: str, first_password: str) -> None:
        """The first password takes them to the page that changes it; then they log in again."""
        await self.log_in(login, first_password)
        await expect(self.page.locator("h1")).to_have_text("Trocar a senha")
        await self.page.fill("#atual", first_password)
        await self.page.fill("#nova", NEW_PASSWORD)
        await self.page.fill("#confirmacao", NEW_PASSWORD)
        await self.page.click("main button[type=submit]")
        await expect(self.page.locator(".aviso")).to_contain_text("Senha alterada")
        await self.log_in(login, NEW_PASSWORD)
        await expect(self.page.locator("h1")).to_contain_text("Painel")


async def operator(svc: Services, browser: Browser, base: str, login: str, *codes: Permission) -> Operator:
    first = await operators.create(svc, login, frozenset(codes) or ADMIN_CODES, by="cli:test")
    who = Operator(await browser.new_page(), base)
    await who.first_login(login, first)
    return who


def unique(prefix: str) -> str:
    return f"{prefix}{next(_prefixes)}"


async def billed(svc: Services, backoffice: BackOffice, prefix: str, amount: int) -> tuple[str, dict]:
    """A new convênio (daily billing) whose participant ANA bought `amount` today, billed
    tomorrow: the convênio and its open duplicata."""
    code = unique(prefix)
    await backoffice.create_convenio(code, total_limit=100_000, billing={"period": "DAILY"})
    await backoffice.add_participant(code, "ANA", limit=10_000)
    creds = {
        "convenio": code,
        "participant": "ANA",
        "password": None,
        "integration_key": "",
        "api_key": backoffice.api_key,
    }
    buyer = Terminal(backoffice.client, creds)
    held = await buyer.hold(amount, proof=await mint_proof(svc, code, "ANA"))
    assert (await buyer.commit(held.json()["id"], coupon=f"NF-{amount}")).status_code == 200
    await writer.drain(svc, svc.settings.database_url)
    tomorrow = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    async with svc.ledger.connection() as conn:
        await duplicatas.generate(svc, conn, tomorrow.date(), convenio=code, now=tomorrow)
        [dup] = await duplicatas.listing(conn, code)
    return code, dup


# --- the scenarios -------------------------------------------------------------------------------
async def test_log_in_find_cliente_001_by_name_and_see_r_110_available(
    server: str, browser: Browser, svc: Services, seed: Terminal
) -> None:
    ana = await operator(svc, browser, server, unique("ana"))
    await shot(ana.page, "painel")
    await writer.drain(svc, svc.settings.database_url)  # the search reads the ledger's projection
    await ana.go("/participantes?q=CLIENTE 001")
    await ana.page.click("text=CLIENTE 001")
    await expect(ana.page.locator("#disponivel")).to_have_text("R$ 110,00")
    await shot(ana.page, "participante")


async def test_cancel_a_pending_empenho_from_the_participant_s_page(
    server: str, browser: Browser, svc: Services, seed: Terminal
) -> None:
    held = await seed.hold(2_500, proof=await mint_proof(svc, "EMP001", "CLI001"))
    assert held.status_code == 201, held.text
    await writer.drain(svc, svc.settings.database_url)
    bia = await operator(svc, browser, server, unique("bia"))
    await bia.go("/convenios/EMP001/participantes/CLI001")
    row = bia.page.locator("#pendentes tr", has_text=held.json()["id"])
    await row.locator("input[name=motivo]").fill("cliente desistiu")
    await shot(bia.page, "empenhos-pendentes")
    await row.locator("button", has_text="Cancelar").click()
    await expect(bia.page.locator(".aviso")).to_contain_text("cancelado")
    assert (await seed.get(held.json()["id"])).json()["status"] == "CANCELLED"
    await expect(bia.page.locator("#disponivel")).to_have_text("R$ 110,00")


async def test_settle_a_duplicata(server: str, browser: Browser, svc: Services, backoffice: BackOffice) -> None:
    code, dup = await billed(svc, backoffice, "BODUP", 578)
    caio = await operator(svc, browser, server, unique("caio"))
    await caio.go(f"/duplicatas?convenio={code}")
    await caio.page.click(f"text={dup['id']}")
    await expect(caio.page.locator("#situacao")).to_have_text("Em aberto")
    await caio.page.fill("#nota", "TED 123")
    await shot(caio.page, "duplicata")
    await caio.page.click("button:has-text('Quitar')")
    await expect(caio.page.locator(".aviso")).to_contain_text("quitada")
    await expect(caio.page.locator("#situacao")).to_have_text("Quitada")


async def test_upload_a_closing_file_and_see_one_record_conciliado_and_one_nao_conciliado(
    server: str, browser: Browser, svc: Services, seed: Terminal, tmp_path: Path
) -> None:
    store = unique("LJ")
    held = await seed.hold(578, proof=await mint_proof(svc, "EMP001", "CLI001"), store=store, terminal="PDV01")
    coupon = unique("CUPOM-")
    assert (await seed.commit(held.json()["id"], coupon=coupon)).status_code == 200
    await writer.drain(svc, svc.settings.database_url)
    today = datetime.datetime.now(datetime.UTC).astimezone(datetime.timezone(datetime.timedelta(hours=-3))).date()
    file = tmp_path / "fechamento.csv"
    file.write_text(
        "store,terminal,date,coupon,convenio,participant,amount\n"
        f"{store},PDV01,{today},{coupon},EMP001,CLI001,578\n"
        f"{store},PDV01,{today},NUNCA-VISTO,EMP001,CLI001,999\n"
    )
    dora = await operator(svc, browser, server, unique("dora"))
    await dora.go("/conciliacao")
    await dora.page.set_input_files("#arquivo", str(file))
    await dora.page.click("button:has-text('Enviar')")
    await expect(dora.page.locator(".aviso")).to_contain_text("importado")
    await dora.page.fill("#data-execucao", today.isoformat())
    await dora.page.click("button:has-text('Conciliar')")
    await expect(dora.page.locator(".aviso")).to_contain_text("Conciliação executada")
    await dora.go(f"/conciliacao?loja={store}")
    await expect(dora.page.locator(f"#registros span[data-coupon='{coupon}']").first).to_have_text("Conciliado")
    await expect(dora.page.locator("#registros span[data-coupon='NUNCA-VISTO']")).to_have_text("Não conciliado")
    await shot(dora.page, "conciliacao")


async def test_approve_a_limit_request_for_another_amount(
    server: str, browser: Browser, svc: Services, backoffice: BackOffice
) -> None:
    code = unique("BOLIM")
    await backoffice.create_convenio(code, total_limit=100_000)
    await backoffice.add_participant(code, "ANA", limit=10_000)
    r = await backoffice.client.post(
        f"/v1/convenios/{code}/participants/ANA/limit-requests",
        json={"suggested_limit": 30_000, "reason": "aumento de salário", "urgent": True},
        headers=backoffice.headers,
    )
    assert r.status_code == 201, r.text
    edu = await operator(svc, browser, server, unique("edu"))
    await edu.go("/solicitacoes")
    row = edu.page.locator(f"tr[data-request='{r.json()['id']}']")
    await row.locator("input[name=limite]").fill("200,00")
    await shot(edu.page, "solicitacoes")
    await row.locator("button", has_text="Aprovar").click()
    await expect(edu.page.locator(".aviso")).to_contain_text("R$ 200,00")
    participant = await backoffice.client.get(f"/v1/convenios/{code}/participants/ANA", headers=backoffice.headers)
    assert participant.json()["limit"] == 20_000


async def test_an_operator_with_603_alone_sees_no_settle_button_and_a_forged_post_is_refused(
    server: str, browser: Browser, svc: Services, backoffice: BackOffice
) -> None:
    _, dup = await billed(svc, backoffice, "BORO", 700)
    fabi = await operator(svc, browser, server, unique("fabi"), Permission.CONVENIOS_READ)
    await fabi.go(f"/duplicatas/{dup['id']}")
    await expect(fabi.page.locator("#situacao")).to_have_text("Em aberto")
    await expect(fabi.page.locator("button:has-text('Quitar')")).to_have_count(0)
    await shot(fabi.page, "duplicata-somente-leitura")
    # the same POST the admin's button sends, with the operator's own session and CSRF token
    csrf = await fabi.page.locator("header form input[name=csrf]").get_attribute("value")
    forged = await fabi.page.request.post(f"{server}/duplicatas/{dup['id']}/quitar", form={"csrf": csrf or ""})
    assert forged.status == 403
    # and one without the token, as another site would send it
    no_token = await fabi.page.request.post(f"{server}/duplicatas/{dup['id']}/quitar", form={"nota": "x"})
    assert no_token.status in (401, 403)
    async with svc.ledger.connection() as conn:
        assert (await duplicatas.get(conn, dup["id"]))["status"] == "OPEN"
