"""The cash-closing report (fechamento de caixa): a business day's convênio sales per
store and terminal, the returns (devoluções) taken there apart from them, the totals per
convênio and per participant kept apart, to the centavo; sales and returns made through the
real API, stored by the real ledger writer, at the test's own times."""

from __future__ import annotations

import asyncio
import datetime
import json
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from click.testing import CliRunner, Result

from ledger.reconciliation import reconcile as rec
from ledger.reconciliation.cli import closing
from ledger.reconciliation.closing import cash_closing
from ledger.writer import writer
from tests.checkout import BackOffice, Clock, Terminal, mint_proof
from tests.test_reconciliation import (
    MON,
    RETURNS_HEADER,
    SUN,
    THU,
    TUE,
    WED,
    Treasury,
    at,
    bought_monday_returned_wednesday,
    closing_file,
    give_back,
    give_part_back,
    return_line,
    sale_line,
    sell,
    set_clock,
)


def totals(
    sales: int,
    sales_amount: int,
    reversals: int = 0,
    reversals_amount: int = 0,
    pool: tuple[int, int] = (0, 0),
    credit: tuple[int, int] = (0, 0),
) -> dict[str, int]:
    """A closing's totals; `pool` and `credit`: (returns, amount) given back to the convênio's
    pool and refunded as DEVOLUCAO credit. The net is what the convênio is charged."""
    return {
        "sales": sales,
        "sales_amount": sales_amount,
        "reversals": reversals,
        "reversals_amount": reversals_amount,
        "returns": pool[0] + credit[0],
        "returns_amount": pool[1] + credit[1],
        "pool_returns": pool[0],
        "pool_returns_amount": pool[1],
        "credit_returns": credit[0],
        "credit_returns_amount": credit[1],
        "net_amount": sales_amount - reversals_amount - pool[1],
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


# --- returns (devoluções) -----------------------------------------------------------------------
@pytest.fixture
async def returned_at_another_store(seed: Terminal, svc, clock: Clock, ledger_url) -> dict[str, str]:
    return await bought_monday_returned_wednesday(seed, svc, clock, ledger_url)


async def test_a_return_shows_apart_from_the_sales_where_and_when_it_was_taken(
    returned_at_another_store, ledger: asyncpg.Pool
) -> None:
    ids = returned_at_another_store
    async with ledger.acquire() as conn:
        monday, tuesday, wednesday, thursday = [(await cash_closing(conn, d)).as_dict() for d in (MON, TUE, WED, THU)]
        wednesday_at_loja01 = (await cash_closing(conn, WED, store="LOJA01")).as_dict()

    # Monday: the sale, at LOJA01 / PDV01; its returns are not Monday's, nor that terminal's
    [(where, sold)] = [((t["store"], t["terminal"]), t) for t in monday["terminals"]]
    assert where == ("LOJA01", "PDV01")
    assert sold["totals"] == totals(1, 5780) and sold["returns"] == []
    assert tuesday["terminals"] == [] and thursday["terminals"] == []  # 23:40 is still Wednesday
    assert wednesday_at_loja01["terminals"] == []

    # Wednesday at LOJA02 / PDV07: its own sale, and apart from it the two returns it took:
    # R$ 12,00 back to the convênio, R$ 8,00 as the customer's credit (the convênio still pays it)
    [pdv07] = wednesday["terminals"]
    assert (pdv07["store"], pdv07["terminal"]) == ("LOJA02", "PDV07")
    assert pdv07["totals"] == totals(1, 300, pool=(1, 1200), credit=(1, 800))
    assert (pdv07["totals"]["returns_amount"], pdv07["totals"]["net_amount"]) == (2000, 300 - 1200)
    assert pdv07["convenios"] == [{"convenio": "EMP001", **totals(1, 300, pool=(1, 1200), credit=(1, 800))}]
    assert pdv07["participants"] == [
        {"convenio": "EMP001", "participant": "CLI001", **totals(1, 300, pool=(1, 1200), credit=(1, 800))}
    ]
    # each return names the sale it gave back part of, sold elsewhere and earlier
    assert [(r["id"], r["amount"], r["refund"], r["credit_reference"]) for r in pdv07["returns"]] == [
        (ids["pool"], 1200, "POOL", None),
        (ids["credit"], 800, "CREDIT", f"DEV-{ids['credit']}"),
    ]
    sale_fields = ("empenho", "coupon", "convenio", "participant", "sale_store", "sale_terminal", "sale_date")
    assert {tuple(r[f] for f in sale_fields) for r in pdv07["returns"]} == {
        (ids["sale"], "CUPOM-5780", "EMP001", "CLI001", "LOJA01", "PDV01", "2025-11-17")
    }
    assert pdv07["returns"][0]["reason"] == "troca de tamanho"
    assert wednesday["totals"] == totals(1, 300, pool=(1, 1200), credit=(1, 800))


async def test_a_sale_returned_in_part_then_reversed_counts_each_on_its_day(
    seed: Terminal, svc, clock: Clock, ledger_url, ledger: asyncpg.Pool
) -> None:
    set_clock(clock, MON, 10)
    sale = await sell(seed, svc, 2000, "C-1")
    set_clock(clock, TUE, 10)
    await give_part_back(seed, sale, 500)
    set_clock(clock, WED, 10)
    await give_back(seed, sale)  # the reversal takes what the return left: R$ 15,00
    await writer.drain(svc, ledger_url)
    async with ledger.acquire() as conn:
        monday, tuesday, wednesday = [(await cash_closing(conn, d)).as_dict() for d in (MON, TUE, WED)]
    assert monday["totals"] == totals(1, 2000)
    assert tuesday["totals"] == totals(0, 0, pool=(1, 500))
    assert wednesday["totals"] == totals(0, 0, 1, 1500)
    assert sum(day["totals"]["net_amount"] for day in (monday, tuesday, wednesday)) == 0


async def test_the_closing_shows_how_far_the_files_return_lines_are_reconciled(
    returned_at_another_store, ledger: asyncpg.Pool
) -> None:
    ids = returned_at_another_store
    treasury = Treasury(ledger)
    await treasury.import_(
        closing_file(
            sale_line("CUPOM-0300", 300, day=WED, store="LOJA02", terminal="PDV07", returns_column=True),
            return_line(ids["pool"], -1200),
            return_line(ids["credit"], -900),  # the terminal says R$ 9,00
            header=RETURNS_HEADER,
        )
    )
    await treasury.run(WED)
    async with ledger.acquire() as conn:
        [pdv07] = (await cash_closing(conn, WED)).as_dict()["terminals"]
    assert pdv07["reconciliation"] == {
        "file_lines": 1,
        "file_amount": 300,
        "states": {"NOT_RECONCILED": 0, "RECONCILED": 1, "DIVERGENT": 0, "FAILED": 0},
    }
    assert pdv07["return_reconciliation"] == {
        "file_lines": 2,
        "file_amount": 2100,  # given back, as the file says
        "states": {"NOT_RECONCILED": 0, "RECONCILED": 1, "DIVERGENT": 1, "FAILED": 0},
    }


async def test_the_closing_command_prints_the_returns(returned_at_another_store, ledger_url) -> None:
    ids = returned_at_another_store
    env = {"DATABASE_URL": ledger_url}
    r = await asyncio.to_thread(_invoke, ["--date", "2025-11-19"], env)
    assert r.exit_code == 0, r.output
    assert "LOJA02 / PDV07" in r.stdout and "LOJA01 / PDV01" not in r.stdout
    assert "2 return(s)       R$ 20,00 (1 as credit R$ 8,00)" in r.stdout
    assert "net       -R$ 9,00" in r.stdout
    assert "returns taken here:" in r.stdout
    assert f"{ids['pool']}       R$ 12,00 POOL  of CUPOM-5780 (EMP001 CLI001) sold 2025-11-17 at LOJA01 PDV01" in (
        r.stdout
    )
    assert f"CREDIT DEV-{ids['credit']}" in r.stdout
    r = await asyncio.to_thread(_invoke, ["--date", "2025-11-19", "--json"], env)
    assert json.loads(r.stdout)["totals"] == totals(1, 300, pool=(1, 1200), credit=(1, 800))


# --- each store's own business day -------------------------------------------------------------------
async def test_a_sale_at_23_30_in_manaus_is_on_that_store_s_business_day_in_its_closing(
    seed: Terminal, svc, clock: Clock, ledger_url, ledger: asyncpg.Pool
) -> None:
    """Manaus is UTC−4: 23:30 there on Monday is 00:30 on Tuesday in São Paulo. The sale is
    Monday's at the Manaus store (its closing, its reconciliation), while a São Paulo store's
    sale at the same instant is Tuesday's."""
    from gateway.stores import stores
    from gateway.stores.schemas import StoreCreate

    await stores.save(svc, "MAO01", StoreCreate(code="MAO01", name="LOJA MANAUS", time_zone="America/Manaus"))
    manaus_2330 = datetime.datetime.combine(MON, datetime.time(23, 30), ZoneInfo("America/Manaus"))
    clock.now = int(manaus_2330.timestamp() * 1000)
    await sell(seed, svc, 2_345, "MAO-1", store="MAO01")
    await sell(seed, svc, 1_000, "SP-1", store="LOJA01")
    await writer.drain(svc, ledger_url)

    async with ledger.acquire() as conn:
        monday, tuesday = (await cash_closing(conn, MON)).as_dict(), (await cash_closing(conn, TUE)).as_dict()
    assert [(t["store"], t["totals"]["sales_amount"]) for t in monday["terminals"]] == [("MAO01", 2_345)]
    assert [(t["store"], t["totals"]["sales_amount"]) for t in tuesday["terminals"]] == [("LOJA01", 1_000)]

    # the Manaus terminal's closing file says Monday: reconciled on Monday's run
    treasury = Treasury(ledger)
    await treasury.import_(closing_file(sale_line("MAO-1", 2_345, day=MON, store="MAO01")), now=at(TUE, 9))
    report = await treasury.run(MON)
    assert report.changed["RECONCILED"] == 1
