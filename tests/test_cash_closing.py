"""The cash-closing report (fechamento de caixa): a business day's convênio sales per
store and terminal, the totals per convênio and per participant kept apart, to the centavo;
sales made through the real API, stored by the real ledger writer, at the test's own times."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
from click.testing import CliRunner, Result

from ledger.reconciliation import reconcile as rec
from ledger.reconciliation.cli import closing
from ledger.reconciliation.closing import cash_closing
from ledger.writer import writer
from tests.checkout import BackOffice, Clock, Terminal, mint_proof
from tests.test_reconciliation import MON, SUN, TUE, Treasury, closing_file, give_back, sale_line, sell, set_clock


def totals(sales: int, sales_amount: int, reversals: int = 0, reversals_amount: int = 0) -> dict[str, int]:
    return {
        "sales": sales,
        "sales_amount": sales_amount,
        "reversals": reversals,
        "reversals_amount": reversals_amount,
        "net_amount": sales_amount - reversals_amount,
    }


@pytest.fixture
async def two_days(seed: Terminal, backoffice: BackOffice, svc, clock: Clock, ledger_url) -> dict[str, str]:
    """CLIENTE 001 buys on EMP001 and on EMP002 (the same customer, two convênios), CLIENTE 002
    on EMP002, at two stores; one sale comes back the same day, one the next day."""
    await backoffice.create_convenio("EMP002", total_limit=100_000)
    await backoffice.add_participant("EMP002", "CLI001", limit=20_000)
    await backoffice.add_participant("EMP002", "CLI002", limit=20_000)
    ana = seed  # EMP001 / CLI001
    ana_at_emp002 = seed.as_participant("EMP002", "CLI001")
    beto = seed.as_participant("EMP002", "CLI002")

    set_clock(clock, SUN, 23, 50)
    await sell(ana, svc, 111, "C-0")  # Sunday's: never in Monday's closing
    set_clock(clock, MON, 8)
    await sell(ana, svc, 578, "C-1")
    await sell(ana_at_emp002, svc, 2500, "C-2")
    await sell(beto, svc, 4000, "C-3")
    returned_next_day = await sell(ana, svc, 1200, "C-4")
    set_clock(clock, MON, 12)
    returned_same_day = await sell(beto, svc, 700, "C-5")
    set_clock(clock, MON, 12, 30)
    await give_back(beto, returned_same_day)
    set_clock(clock, MON, 13)
    await sell(ana, svc, 999, "C-6", terminal="PDV02")
    set_clock(clock, MON, 14)
    await sell(beto, svc, 100, "C-7", store="LOJA02")
    # holds never committed are no sale: one left pending, one dropped
    assert (await ana.hold(5000, proof=await mint_proof(svc, "EMP001", "CLI001"))).status_code == 201
    dropped = (await ana.hold(300, proof=await mint_proof(svc, "EMP001", "CLI001"))).json()
    assert (await ana.cancel(dropped["id"])).json()["status"] == "CANCELLED"
    set_clock(clock, MON, 23, 30)  # 02:30 UTC on Tuesday, still Monday in São Paulo
    await sell(ana, svc, 45, "C-8")
    set_clock(clock, TUE, 0, 30)
    await sell(ana, svc, 55, "C-9")
    set_clock(clock, TUE, 10)
    await give_back(ana, returned_next_day)
    await writer.drain(svc, ledger_url)
    return {"returned_next_day": returned_next_day}


async def test_mondays_closing_per_store_and_terminal_keeps_convenio_and_participant_totals_apart(
    two_days, ledger: asyncpg.Pool
) -> None:
    async with ledger.acquire() as conn:
        report = (await cash_closing(conn, MON)).as_dict()

    assert [(t["store"], t["terminal"]) for t in report["terminals"]] == [
        ("LOJA01", "PDV01"),
        ("LOJA01", "PDV02"),
        ("LOJA02", "PDV01"),
    ]
    pdv01, pdv02, loja02 = report["terminals"]
    # C-1 578 + C-4 1200 + C-8 45 on EMP001; C-2 2500 + C-3 4000 + C-5 700 (returned at 12:30) on EMP002
    assert pdv01["totals"] == totals(6, 9023, 1, 700)
    assert pdv01["convenios"] == [
        {"convenio": "EMP001", **totals(3, 1823)},
        {"convenio": "EMP002", **totals(3, 7200, 1, 700)},
    ]
    assert pdv01["participants"] == [
        {"convenio": "EMP001", "participant": "CLI001", **totals(3, 1823)},
        {"convenio": "EMP002", "participant": "CLI001", **totals(1, 2500)},
        {"convenio": "EMP002", "participant": "CLI002", **totals(2, 4700, 1, 700)},
    ]
    assert pdv02["convenios"] == [{"convenio": "EMP001", **totals(1, 999)}]
    assert pdv02["participants"] == [{"convenio": "EMP001", "participant": "CLI001", **totals(1, 999)}]
    assert loja02["totals"] == totals(1, 100)
    assert loja02["participants"] == [{"convenio": "EMP002", "participant": "CLI002", **totals(1, 100)}]
    assert report["totals"] == totals(8, 10_122, 1, 700)
    assert report["totals"]["net_amount"] == 9422  # R$ 94,22
    # per convênio and per participant, each side adds up to the terminal's total
    for t in report["terminals"]:
        for side in ("convenios", "participants"):
            assert sum(x["net_amount"] for x in t[side]) == t["totals"]["net_amount"]


async def test_a_sale_returned_the_next_day_is_a_reversal_in_that_days_closing(two_days, ledger: asyncpg.Pool) -> None:
    async with ledger.acquire() as conn:
        tuesday = (await cash_closing(conn, TUE)).as_dict()
        sunday = (await cash_closing(conn, SUN)).as_dict()
    [pdv01] = tuesday["terminals"]
    assert pdv01["convenios"] == [{"convenio": "EMP001", **totals(1, 55, 1, 1200)}]
    assert pdv01["totals"]["net_amount"] == -1145
    assert sunday["totals"] == totals(1, 111)


async def test_the_closing_of_one_store_or_terminal_and_how_far_its_file_is_reconciled(
    two_days, ledger: asyncpg.Pool
) -> None:
    async with ledger.acquire() as conn:
        only = (await cash_closing(conn, MON, store="LOJA01", terminal="PDV02")).as_dict()
        store = (await cash_closing(conn, MON, store="LOJA02")).as_dict()
    assert [(t["store"], t["terminal"]) for t in only["terminals"]] == [("LOJA01", "PDV02")]
    assert only["totals"] == totals(1, 999)
    assert [(t["store"], t["terminal"]) for t in store["terminals"]] == [("LOJA02", "PDV01")]

    treasury = Treasury(ledger)
    await treasury.import_(
        closing_file(
            sale_line("C-1", 578),
            sale_line("C-2", 2500, convenio="EMP002"),
            sale_line("C-3", 4000, convenio="EMP002", participant="CLI002"),
            sale_line("C-4", 1200),
            sale_line("C-9", 55),  # Tuesday's sale in Monday's file
        )
    )
    await treasury.run(MON)
    async with ledger.acquire() as conn:
        report = (await cash_closing(conn, MON, store="LOJA01")).as_dict()
    pdv01, pdv02 = report["terminals"]
    assert pdv01["reconciliation"] == {
        "file_lines": 5,
        "file_amount": 578 + 2500 + 4000 + 1200 + 55,
        # C-4 was returned on Tuesday: not a live sale any more
        "states": {"NOT_RECONCILED": 1, "RECONCILED": 3, "DIVERGENT": 1, "FAILED": 0},
    }
    assert pdv02["reconciliation"]["file_lines"] == 0


def _invoke(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(closing, args, env=env, catch_exceptions=False)


async def test_the_closing_command_prints_the_report_or_its_json(two_days, ledger_url) -> None:
    env = {"DATABASE_URL": ledger_url}
    r = await asyncio.to_thread(_invoke, ["--date", "2025-11-17", "--terminal", "PDV02", "--json"], env)
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert (report["date"], report["terminal"], report["totals"]) == ("2025-11-17", "PDV02", totals(1, 999))

    r = await asyncio.to_thread(_invoke, ["--date", "2025-11-17", "--store", "LOJA01"], env)
    assert r.exit_code == 0, r.output
    assert "Fechamento de caixa 2025-11-17" in r.stdout
    assert "per convênio:" in r.stdout and "per participant:" in r.stdout
    assert "EMP002 CLI002" in r.stdout and rec.brl(9023) == "R$ 90,23" and "R$ 90,23" in r.stdout

    assert (await asyncio.to_thread(_invoke, ["--date", "2025-13-01"], env)).exit_code == 2
    r = await asyncio.to_thread(_invoke, ["--help"], env)
    assert r.exit_code == 0 and "fechamento de caixa" in r.stdout
