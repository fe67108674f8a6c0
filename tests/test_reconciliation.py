"""Reconciliation of the terminals' closing files with the ledger:
the treasury imports each terminal's fechamento de caixa, runs the reconciliation day by day,
looks at what did not match, undoes a reconciliation, and reads the convênio's receivable; the
files' return lines (devoluções) are matched against the ledger's returns the same way.
Sales and returns go through the real API and the real ledger writer; every time is the test's own."""

from __future__ import annotations

import asyncio
import datetime
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from click.testing import CliRunner, Result

from ledger.reconciliation import reconcile as rec
from ledger.reconciliation.cli import reconcile
from ledger.writer import writer
from tests.checkout import BackOffice, Clock, Terminal, mint_proof

SP = ZoneInfo("America/Sao_Paulo")
SUN = datetime.date(2025, 11, 16)
MON, TUE, WED, THU, FRI = (datetime.date(2025, 11, 17) + datetime.timedelta(days=n) for n in range(5))
HEADER = "store,terminal,date,coupon,convenio,participant,amount"
RETURNS_HEADER = HEADER + ",type,return"  # a file that may carry return lines


def at(day: datetime.date, hour: int = 14, minute: int = 0) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(hour, minute), SP)


def set_clock(clock: Clock, day: datetime.date, hour: int = 14, minute: int = 0) -> None:
    clock.now = int(at(day, hour, minute).timestamp() * 1000)


async def sell(t: Terminal, svc, amount: int, coupon: str, store: str = "LOJA01", terminal: str = "PDV01") -> str:
    """A checkout: hold, then commit with the coupon; the empenho's id."""
    held = await t.hold(amount, proof=await mint_proof(svc, t.convenio, t.participant), store=store, terminal=terminal)
    assert held.status_code == 201, held.text
    committed = await t.commit(held.json()["id"], coupon=coupon)
    assert committed.status_code == 200, committed.text
    return held.json()["id"]


async def give_back(t: Terminal, empenho_id: str) -> None:
    r = await t.cancel(empenho_id, reason="devolução")
    assert r.json()["status"] == "REVERSED", r.text


async def give_part_back(
    t: Terminal, empenho_id: str, amount: int, store: str = "LOJA01", terminal: str = "PDV01", **extra: Any
) -> str:
    """A return (devolução) of part of a committed sale, taken at this store and terminal; its id."""
    r = await t.return_sale(empenho_id, amount, store=store, terminal=terminal, **extra)
    assert r.status_code == 201, r.text
    assert r.json()["id"].startswith("R")
    return r.json()["id"]


async def bought_monday_returned_wednesday(t: Terminal, svc, clock: Clock, ledger_url: str) -> dict[str, str]:
    """CLIENTE 001 buys R$ 57,80 at LOJA01 / PDV01 on Monday (CUPOM-5780). On Wednesday he brings
    part of it back to another store, LOJA02, at its PDV07: R$ 12,00 back to the convênio at
    15:00, and at 23:40 (02:40 UTC on Thursday, still Wednesday in São Paulo) R$ 8,00 as a store
    credit; in between the same terminal sells him R$ 3,00 (CUPOM-0300)."""
    set_clock(clock, MON, 10)
    sale = await sell(t, svc, 5780, "CUPOM-5780")
    set_clock(clock, WED, 15)
    pool = await give_part_back(t, sale, 1200, store="LOJA02", terminal="PDV07", reason="troca de tamanho")
    set_clock(clock, WED, 16)
    await sell(t, svc, 300, "CUPOM-0300", store="LOJA02", terminal="PDV07")
    set_clock(clock, WED, 23, 40)
    credit = await give_part_back(t, sale, 800, store="LOJA02", terminal="PDV07", refund="CREDIT")
    await writer.drain(svc, ledger_url)
    return {"sale": sale, "pool": pool, "credit": credit}


def closing_file(*lines: str, header: str = HEADER) -> bytes:
    return ("\n".join((header, *lines)) + "\n").encode()


def sale_line(
    coupon: str,
    amount: Any,
    day: datetime.date = MON,
    convenio: str = "EMP001",
    participant: str = "CLI001",
    store: str = "LOJA01",
    terminal: str = "PDV01",
    kind: str | None = None,
    returns_column: bool = False,
) -> str:
    line = f"{store},{terminal},{day},{coupon},{convenio},{participant},{amount}"
    if returns_column:  # a sale line of a file with the return column: SALE, no return
        return f"{line},{kind or 'SALE'},"
    return line if kind is None else f"{line},{kind}"


def return_line(
    return_id: str,
    amount: Any,
    day: datetime.date = WED,
    coupon: str = "CUPOM-5780",
    store: str = "LOJA02",
    terminal: str = "PDV07",
    convenio: str = "EMP001",
    participant: str = "CLI001",
) -> str:
    """A return line as a POS writes it: where and when the return was taken, the coupon of the
    sale returned, the centavos given back written negative, and the return's id."""
    return f"{store},{terminal},{day},{coupon},{convenio},{participant},{amount},RETURN,{return_id}"


class Treasury:
    """The operator who reconciles, each action at a time the test chooses."""

    def __init__(self, pool: asyncpg.Pool, by: str = "tesouraria") -> None:
        self.pool, self.by = pool, by

    async def import_(self, data: bytes, name: str = "fechamento.csv", now: datetime.datetime | None = None):
        async with self.pool.acquire() as conn:
            return await rec.import_file(conn, name, data, self.by, now or at(MON, 22))

    async def run(self, day: datetime.date, window: int = 3) -> rec.RunReport:
        async with self.pool.acquire() as conn:
            return await rec.run(conn, day, window, self.by, at(day, 23))

    async def undo(self, record_id: int, now: datetime.datetime, note: str = "") -> list[rec.Record]:
        async with self.pool.acquire() as conn:
            return await rec.undo(conn, record_id, self.by, now, note)

    async def records(self, **filters: Any) -> list[rec.Record]:
        async with self.pool.acquire() as conn:
            found, total = await rec.records(conn, **filters)
        assert len(found) == total
        return found

    async def states(self) -> dict[tuple[str, str], tuple[str, str | None]]:
        return {(r.origin, r.coupon): (r.state, r.missing) for r in await self.records()}

    async def board(self) -> dict[tuple[str, str, str, str | None], tuple[str, str | None]]:
        """Every record by origin, type, coupon and return: its state and the side missing."""
        found = await self.records()
        board = {(r.origin, r.type, r.coupon, r.return_id): (r.state, r.missing) for r in found}
        assert len(board) == len(found)
        return board

    async def return_lines(self, return_id: str, origin: str = "FILE") -> list[rec.Record]:
        return [r for r in await self.records() if r.return_id == return_id and r.origin == origin]

    async def line(self, coupon: str, origin: str = "FILE") -> rec.Record:
        [found] = [r for r in await self.records() if r.coupon == coupon and r.origin == origin]
        return found

    async def lines(self, coupon: str) -> list[rec.Record]:
        return [r for r in await self.records() if r.coupon == coupon and r.origin == "FILE"]

    async def history(self, record_id: int) -> list[tuple[str, str, str]]:
        async with self.pool.acquire() as conn:
            _, rows = await rec.history(conn, record_id)
        return [(h["state"], h["by"], h["note"]) for h in rows]

    async def receivable(self, convenio: str = "EMP001") -> tuple[list[tuple[str, int, int]], int]:
        async with self.pool.acquire() as conn:
            account = await rec.receivables(conn, convenio)
        return [(m["kind"], m["amount"], m["balance"]) for m in account["movements"]], account["balance"]

    async def counts(self) -> dict[str, int]:
        tables = ("closing_files", "reconciliation_records", "reconciliation_history", "receivable_movements")
        async with self.pool.acquire() as conn:
            return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in tables}

    async def fingerprint(self) -> list[Any]:
        """Every row of the reconciliation's tables: a run that changes nothing leaves it as it was."""
        async with self.pool.acquire() as conn:
            return [
                [tuple(r) for r in await conn.fetch("SELECT * FROM reconciliation_records ORDER BY id")],
                [tuple(r) for r in await conn.fetch("SELECT * FROM reconciliation_history ORDER BY seq")],
                [tuple(r) for r in await conn.fetch("SELECT * FROM receivable_movements ORDER BY seq")],
            ]


@pytest.fixture
def treasury(ledger: asyncpg.Pool) -> Treasury:
    return Treasury(ledger)


# --- one day, every state ----------------------------------------------------------------------
async def test_a_days_closing_file_is_reconciled_line_by_line(
    seed: Terminal, svc, clock: Clock, ledger_url, treasury: Treasury
) -> None:
    set_clock(clock, MON, 10)
    await sell(seed, svc, 578, "CUPOM-1")  # the worked example's R$ 5,78: the file says the same
    await sell(seed, svc, 1200, "CUPOM-2")  # the file says R$ 12,50
    await sell(seed, svc, 300, "CUPOM-3")  # the terminal's file forgot it
    returned = await sell(seed, svc, 950, "CUPOM-4")
    clock.advance(3600)
    await give_back(seed, returned)  # reversed the same day, yet in the file
    await writer.drain(svc, ledger_url)

    data = closing_file(
        sale_line("CUPOM-1", 578, kind="SALE"),
        sale_line("CUPOM-2", 1250, kind=""),
        sale_line("CUPOM-9", 400, kind="SALE"),  # the ledger never had it
        sale_line("CUPOM-4", 950, kind="SALE"),
        "LOJA01,PDV01,2025-11-17,,EMP001,,-35,ADJUSTMENT",
        header=HEADER + ",type",
    )
    imported = await treasury.import_(data, "fechamento-LOJA01-PDV01-2025-11-17.csv")
    assert (imported.already, imported.lines, imported.sales, imported.informative) == (False, 5, 4, 1)
    assert imported.sales_amount == 578 + 1250 + 400 + 950
    assert await treasury.states() == {
        ("FILE", "CUPOM-1"): ("NOT_RECONCILED", None),
        ("FILE", "CUPOM-2"): ("NOT_RECONCILED", None),
        ("FILE", "CUPOM-9"): ("NOT_RECONCILED", None),
        ("FILE", "CUPOM-4"): ("NOT_RECONCILED", None),
        ("FILE", ""): ("INFORMATIVE", None),
    }

    report = await treasury.run(MON)

    assert await treasury.states() == {
        ("FILE", "CUPOM-1"): ("RECONCILED", None),
        ("FILE", "CUPOM-2"): ("DIVERGENT", None),
        ("FILE", "CUPOM-9"): ("NOT_RECONCILED", "LEDGER"),
        ("FILE", "CUPOM-4"): ("DIVERGENT", None),
        ("FILE", ""): ("INFORMATIVE", None),
        ("LEDGER", "CUPOM-3"): ("NOT_RECONCILED", "FILE"),
    }
    assert report.as_dict()["changed"] == {"NOT_RECONCILED": 2, "RECONCILED": 1, "DIVERGENT": 2, "FAILED": 0}
    assert report.ledger_side_created == 1
    assert report.as_dict()["window_states"] == {
        "NOT_RECONCILED": 2,
        "RECONCILED": 1,
        "DIVERGENT": 2,
        "INFORMATIVE": 1,
        "FAILED": 0,
    }

    reconciled = await treasury.line("CUPOM-1")
    assert (reconciled.amount, reconciled.ledger_amount, reconciled.empenho_id is not None) == (578, 578, True)
    divergent = await treasury.line("CUPOM-2")
    assert (divergent.amount, divergent.ledger_amount) == (1250, 1200)
    assert "differ by R$ 0,50" in divergent.note
    reversed_ = await treasury.line("CUPOM-4")
    assert (reversed_.empenho_id, reversed_.ledger_amount) == (returned, 0)
    assert "reversed" in reversed_.note
    assert (await treasury.line("CUPOM-9")).note == rec.NO_SALE
    forgotten = await treasury.line("CUPOM-3", origin="LEDGER")
    assert (forgotten.amount, forgotten.business_date, forgotten.note) == (300, MON, rec.NO_FILE_YET)
    informative = await treasury.line("")
    assert (informative.type, informative.amount) == ("ADJUSTMENT", -35)

    # the record's history: when, who, state, note
    assert await treasury.history(reconciled.id) == [
        ("NOT_RECONCILED", "tesouraria", "imported from fechamento-LOJA01-PDV01-2025-11-17.csv line 2"),
        ("RECONCILED", "tesouraria", f"the ledger's sale {reconciled.empenho_id} matches (R$ 5,78)"),
    ]
    async with treasury.pool.acquire() as conn:
        _, rows = await rec.history(conn, reconciled.id)
    assert [datetime.datetime.fromisoformat(h["at"]) for h in rows] == [at(MON, 22), at(MON, 23)]
    assert [s for s, _, _ in await treasury.history(informative.id)] == ["INFORMATIVE"]

    # the treasury's reconciliation moves the convênio's financial account
    assert await treasury.receivable("EMP001") == ([("RECONCILED", 578, 578)], 578)


# --- the look-back window ---------------------------------------------------------------------
async def test_a_sale_the_ledger_got_late_is_reconciled_by_a_later_run_of_the_window(
    seed: Terminal, svc, clock: Clock, ledger_url, treasury: Treasury
) -> None:
    set_clock(clock, MON, 18)
    await sell(seed, svc, 578, "CUPOM-1")
    # the closing file is in before the ledger writer stored the sale
    await treasury.import_(closing_file(sale_line("CUPOM-1", 578)))
    await treasury.run(MON)
    line = await treasury.line("CUPOM-1")
    assert (line.state, line.missing, line.note) == ("NOT_RECONCILED", "LEDGER", rec.NO_SALE)
    assert (await treasury.counts())["receivable_movements"] == 0

    await writer.drain(svc, ledger_url)
    report = await treasury.run(TUE)

    line = await treasury.line("CUPOM-1")
    assert (line.state, line.missing, line.ledger_amount, line.last_run_on) == ("RECONCILED", None, 578, TUE)
    assert [s for s, _, _ in await treasury.history(line.id)] == ["NOT_RECONCILED", "NOT_RECONCILED", "RECONCILED"]
    assert report.changed == {"RECONCILED": 1}
    assert report.ledger_side_created == 0  # the line holds the sale: no ledger-side record
    assert await treasury.receivable("EMP001") == ([("RECONCILED", 578, 578)], 578)

    # the same run again changes nothing: no history, no movement
    before = await treasury.fingerprint()
    again = await treasury.run(TUE)
    assert await treasury.fingerprint() == before
    assert (sum(again.changed.values()), again.movements, again.receivable) == (0, 0, 0)


async def test_what_is_not_matched_within_the_window_fails(
    seed: Terminal, svc, clock: Clock, ledger_url, treasury: Treasury
) -> None:
    set_clock(clock, MON, 11)
    await sell(seed, svc, 300, "CUPOM-3")  # no closing file will ever report it
    await writer.drain(svc, ledger_url)
    await treasury.import_(closing_file(sale_line("CUPOM-9", 400)))  # the ledger will never have it

    for day in (MON, TUE, WED, THU):  # THU is MON + 3: still inside the 3-day look-back
        await treasury.run(day)
        assert await treasury.states() == {
            ("FILE", "CUPOM-9"): ("NOT_RECONCILED", "LEDGER"),
            ("LEDGER", "CUPOM-3"): ("NOT_RECONCILED", "FILE"),
        }, day
    assert (await treasury.line("CUPOM-9")).last_run_on == THU

    report = await treasury.run(FRI)

    assert await treasury.states() == {
        ("FILE", "CUPOM-9"): ("FAILED", "LEDGER"),
        ("LEDGER", "CUPOM-3"): ("FAILED", "FILE"),
    }
    assert report.changed == {"FAILED": 2}
    missing_sale, missing_line = await treasury.line("CUPOM-9"), await treasury.line("CUPOM-3", "LEDGER")
    assert missing_sale.note == "not found in the ledger within the 3-day look-back from 2025-11-17"
    assert missing_line.note == "no closing file reported it within the 3-day look-back from 2025-11-17"
    # one history row per change: the runs that found nothing new wrote nothing
    assert [s for s, _, _ in await treasury.history(missing_sale.id)] == ["NOT_RECONCILED", "NOT_RECONCILED", "FAILED"]
    assert [s for s, _, _ in await treasury.history(missing_line.id)] == ["NOT_RECONCILED", "FAILED"]

    # a FAILED record is no longer tried: Monday's sale reaching the ledger only now changes nothing
    set_clock(clock, MON, 12)
    await sell(seed, svc, 400, "CUPOM-9")
    await writer.drain(svc, ledger_url)
    before = await treasury.fingerprint()
    await treasury.run(FRI)
    assert await treasury.fingerprint() == before


async def test_a_shorter_window_fails_sooner(treasury: Treasury) -> None:
    await treasury.import_(closing_file(sale_line("CUPOM-9", 400)))
    await treasury.run(TUE, window=1)
    assert (await treasury.line("CUPOM-9")).state == "NOT_RECONCILED"
    await treasury.run(WED, window=1)
    failed = await treasury.line("CUPOM-9")
    assert (failed.state, failed.note) == (
        "FAILED",
        "not found in the ledger within the 1-day look-back from 2025-11-17",
    )


# --- undo (Excluir Conciliação) --------------------------------------------------------------
async def test_undoing_a_reconciliation_gives_the_amount_back_and_the_next_run_tries_again(
    seed: Terminal, svc, clock: Clock, ledger_url, treasury: Treasury
) -> None:
    set_clock(clock, MON, 10)
    await sell(seed, svc, 578, "CUPOM-1")
    await sell(seed, svc, 300, "CUPOM-3")  # reported by a later file
    await writer.drain(svc, ledger_url)
    await treasury.import_(
        closing_file(
            sale_line("CUPOM-1", 578, kind="SALE"), sale_line("INFO-1", 0, kind="INFO"), header=HEADER + ",type"
        )
    )
    await treasury.run(MON)
    line = await treasury.line("CUPOM-1")
    assert line.state == "RECONCILED"

    undone = await treasury.undo(line.id, at(TUE, 9), note="cupom conferido de novo")

    assert [(r.id, r.state, r.empenho_id, r.window_from) for r in undone] == [(line.id, "NOT_RECONCILED", None, TUE)]
    assert (await treasury.history(line.id))[-1] == (
        "NOT_RECONCILED",
        "tesouraria",
        "reconciliation undone: cupom conferido de novo",
    )
    assert await treasury.receivable("EMP001") == ([("RECONCILED", 578, 578), ("UNDONE", -578, 0)], 0)

    # what cannot be undone says why
    with pytest.raises(rec.ReconciliationError, match="is NOT_RECONCILED: only a RECONCILED or DIVERGENT"):
        await treasury.undo(line.id, at(TUE, 9))
    with pytest.raises(rec.ReconciliationError, match="INFORMATIVE"):
        await treasury.undo((await treasury.line("INFO-1")).id, at(TUE, 9))
    with pytest.raises(rec.ReconciliationError, match="no reconciliation record 999999"):
        await treasury.undo(999999, at(TUE, 9))

    # the next run tries it again
    await treasury.run(TUE)
    assert (await treasury.line("CUPOM-1")).state == "RECONCILED"
    assert await treasury.receivable("EMP001") == (
        [("RECONCILED", 578, 578), ("UNDONE", -578, 0), ("RECONCILED", 578, 578)],
        578,
    )

    # the forgotten sale is reported by a later file: its ledger-side record follows the line
    await treasury.import_(closing_file(sale_line("CUPOM-3", 300)), "fechamento-complemento.csv", at(TUE, 12))
    await treasury.run(TUE)
    late, ledger_side = await treasury.line("CUPOM-3"), await treasury.line("CUPOM-3", "LEDGER")
    assert (late.state, ledger_side.state, ledger_side.partner) == ("RECONCILED", "RECONCILED", late.id)
    assert ledger_side.note == f"reported by fechamento-complemento.csv line 2 (record {late.id}), RECONCILED"

    # undoing either side undoes the pair
    undone = await treasury.undo(ledger_side.id, at(WED, 9))
    assert sorted((r.origin, r.state) for r in undone) == [("FILE", "NOT_RECONCILED"), ("LEDGER", "NOT_RECONCILED")]
    _, balance = await treasury.receivable("EMP001")
    assert balance == 578
    await treasury.run(WED)
    assert (await treasury.line("CUPOM-3")).state == "RECONCILED"
    assert (await treasury.line("CUPOM-3", "LEDGER")).state == "RECONCILED"
    assert (await treasury.receivable("EMP001"))[1] == 878


# --- the same file, the same run -----------------------------------------------------------------
async def test_the_same_file_imported_again_and_the_same_run_again_change_nothing(
    seed: Terminal, svc, clock: Clock, ledger_url, treasury: Treasury
) -> None:
    set_clock(clock, MON, 10)
    await sell(seed, svc, 578, "CUPOM-1")
    await sell(seed, svc, 300, "CUPOM-3")
    await writer.drain(svc, ledger_url)
    data = closing_file(sale_line("CUPOM-1", 578), sale_line("CUPOM-9", 400))
    first = await treasury.import_(data, "fechamento.csv")
    counts = await treasury.counts()

    again = await treasury.import_(data, "fechamento (1).csv", at(TUE, 8))  # the same bytes, renamed
    assert again.already and again.file_id == first.file_id and again.name == "fechamento.csv"
    assert (
        await treasury.counts()
        == counts
        == {
            "closing_files": 1,
            "reconciliation_records": 2,
            "reconciliation_history": 2,
            "receivable_movements": 0,
        }
    )

    await treasury.run(MON)
    after_one = await treasury.fingerprint()
    second = await treasury.run(MON)
    assert await treasury.fingerprint() == after_one
    assert (sum(second.changed.values()), second.ledger_side_created, second.movements) == (0, 0, 0)
    assert await treasury.counts() == {
        "closing_files": 1,
        "reconciliation_records": 3,  # the two lines and CUPOM-3's ledger-side record
        "reconciliation_history": 5,
        "receivable_movements": 1,
    }


# --- corrections and reversals -------------------------------------------------------------------
async def test_a_corrected_file_takes_the_sale_from_the_divergent_line(
    seed: Terminal, svc, clock: Clock, ledger_url, treasury: Treasury
) -> None:
    set_clock(clock, MON, 10)
    await sell(seed, svc, 1200, "CUPOM-2")
    await writer.drain(svc, ledger_url)
    await treasury.import_(closing_file(sale_line("CUPOM-2", 1250)), "fechamento.csv")
    await treasury.run(MON)
    assert [r.state for r in await treasury.lines("CUPOM-2")] == ["DIVERGENT"]

    await treasury.import_(closing_file(sale_line("CUPOM-2", 1200)), "fechamento-corrigido.csv", at(TUE, 8))
    await treasury.run(TUE)

    wrong, corrected = await treasury.lines("CUPOM-2")
    assert (corrected.state, corrected.ledger_amount) == ("RECONCILED", 1200)
    assert (wrong.state, wrong.missing) == ("NOT_RECONCILED", "LEDGER")
    assert wrong.note == (
        f"the ledger's sale {corrected.empenho_id} is matched by record {corrected.id}: the sale is reported twice"
    )
    assert await treasury.receivable("EMP001") == ([("RECONCILED", 1200, 1200)], 1200)
    await treasury.run(FRI)
    assert [r.state for r in await treasury.lines("CUPOM-2")] == ["FAILED", "RECONCILED"]


async def test_a_sale_reversed_after_it_was_reconciled_gives_the_amount_back(
    seed: Terminal, svc, clock: Clock, ledger_url, treasury: Treasury
) -> None:
    set_clock(clock, MON, 10)
    sold = await sell(seed, svc, 578, "CUPOM-1")
    await writer.drain(svc, ledger_url)
    await treasury.import_(closing_file(sale_line("CUPOM-1", 578)))
    await treasury.run(MON)
    assert (await treasury.line("CUPOM-1")).state == "RECONCILED"

    set_clock(clock, TUE, 10)
    await give_back(seed, sold)  # devolução the next day
    await writer.drain(svc, ledger_url)
    report = await treasury.run(TUE)

    line = await treasury.line("CUPOM-1")
    assert (line.state, line.ledger_amount, line.empenho_id) == ("DIVERGENT", 0, sold)
    assert line.note == (
        f"the ledger reversed the sale {sold} on 2025-11-18 10:00: it is not a live sale (its amount is 0)"
    )
    assert await treasury.receivable("EMP001") == ([("RECONCILED", 578, 578), ("REVERSED", -578, 0)], 0)
    assert (report.changed, report.movements, report.receivable) == ({"DIVERGENT": 1}, 1, -578)
    before = await treasury.fingerprint()
    await treasury.run(TUE)
    assert await treasury.fingerprint() == before


# --- per convênio ---------------------------------------------------------------------------------
async def test_reconciled_sales_move_each_convenios_own_receivable(
    seed: Terminal, backoffice: BackOffice, svc, clock: Clock, ledger_url, treasury: Treasury
) -> None:
    await backoffice.create_convenio("EMP002", total_limit=100_000)
    await backoffice.add_participant("EMP002", "CLI002", limit=50_000)
    other = seed.as_participant("EMP002", "CLI002")
    set_clock(clock, MON, 10)
    await sell(seed, svc, 578, "CUPOM-1")
    await sell(other, svc, 4000, "CUPOM-2")
    await sell(other, svc, 1599, "CUPOM-3", terminal="PDV02")
    await writer.drain(svc, ledger_url)
    await treasury.import_(
        closing_file(
            sale_line("CUPOM-1", 578),
            sale_line("CUPOM-2", 4000, convenio="EMP002", participant="CLI002"),
            sale_line("CUPOM-3", 1599, convenio="EMP002", participant="CLI002", terminal="PDV02"),
        )
    )
    await treasury.run(MON)

    assert await treasury.receivable("EMP001") == ([("RECONCILED", 578, 578)], 578)
    assert await treasury.receivable("EMP002") == ([("RECONCILED", 4000, 4000), ("RECONCILED", 1599, 5599)], 5599)
    async with treasury.pool.acquire() as conn:
        assert await rec.receivable_balances(conn) == [
            {"convenio": "EMP001", "movements": 1, "balance": 578},
            {"convenio": "EMP002", "movements": 2, "balance": 5599},
        ]
        with pytest.raises(rec.ReconciliationError, match="no convênio EMP404"):
            await rec.receivables(conn, "EMP404")
    assert [r.coupon for r in await treasury.records(convenio="EMP002")] == ["CUPOM-2", "CUPOM-3"]
    assert [r.coupon for r in await treasury.records(convenio="EMP002", terminal="PDV02")] == ["CUPOM-3"]


# --- returns (devoluções) ---------------------------------------------------------------------
async def test_a_closing_file_with_its_return_lines_reconciles_clean(
    seed: Terminal, svc, clock: Clock, ledger_url, treasury: Treasury
) -> None:
    ids = await bought_monday_returned_wednesday(seed, svc, clock, ledger_url)
    await treasury.import_(closing_file(sale_line("CUPOM-5780", 5780)), "fechamento-LOJA01-PDV01-2025-11-17.csv")
    await treasury.run(MON)
    # LOJA02 / PDV07's Wednesday: its own sale, and the two returns of Monday's sale it took
    wednesday = closing_file(
        sale_line("CUPOM-0300", 300, day=WED, store="LOJA02", terminal="PDV07", returns_column=True),
        return_line(ids["pool"], -1200),
        return_line(ids["credit"], -800),
        header=RETURNS_HEADER,
    )
    imported = await treasury.import_(wednesday, "fechamento-LOJA02-PDV07-2025-11-19.csv", at(WED, 23, 50))
    assert (imported.lines, imported.sales, imported.sales_amount) == (3, 1, 300)
    assert (imported.returns, imported.returns_amount, imported.informative) == (2, 2000, 0)

    report = await treasury.run(WED)

    assert await treasury.board() == {
        ("FILE", "SALE", "CUPOM-5780", None): ("RECONCILED", None),
        ("FILE", "SALE", "CUPOM-0300", None): ("RECONCILED", None),
        ("FILE", "RETURN", "CUPOM-5780", ids["pool"]): ("RECONCILED", None),
        ("FILE", "RETURN", "CUPOM-5780", ids["credit"]): ("RECONCILED", None),
    }
    assert (report.ledger_sales, report.ledger_returns, report.ledger_side_created) == (2, 2, 0)
    assert report.changed == {"RECONCILED": 3}
    [pool] = await treasury.return_lines(ids["pool"])
    assert (pool.amount, pool.ledger_amount, pool.empenho_id, pool.business_date) == (-1200, -1200, ids["sale"], WED)
    assert pool.note == f"the ledger's return {ids['pool']} matches (R$ 12,00)"
    # the convênio's account: the return given back to its pool comes off what it owes; the one
    # refunded as the customer's credit does not (the convênio still pays for the sale)
    assert await treasury.receivable("EMP001") == (
        [("RECONCILED", 5780, 5780), ("RECONCILED", 300, 6080), ("RETURN", -1200, 4880)],
        4880,
    )
    async with treasury.pool.acquire() as conn:
        account = await rec.receivables(conn, "EMP001")
    assert [(m["return"], m["empenho"], m["date"]) for m in account["movements"]][-1] == (
        ids["pool"],
        ids["sale"],
        "2025-11-19",
    )

    before = await treasury.fingerprint()
    again = await treasury.run(WED)
    assert await treasury.fingerprint() == before
    assert (sum(again.changed.values()), again.movements) == (0, 0)


async def test_a_return_line_missing_or_of_another_amount_is_reported(
    seed: Terminal, svc, clock: Clock, ledger_url, treasury: Treasury
) -> None:
    ids = await bought_monday_returned_wednesday(seed, svc, clock, ledger_url)
    await treasury.import_(closing_file(sale_line("CUPOM-5780", 5780)))
    await treasury.run(MON)
    # PDV07's file says R$ 15,00 for the first return, forgets the credit refund, and names a
    # return the ledger never had; PDV01's file reports the credit refund as its own
    await treasury.import_(
        closing_file(
            sale_line("CUPOM-0300", 300, day=WED, store="LOJA02", terminal="PDV07", returns_column=True),
            return_line(ids["pool"], -1500),
            return_line("R9-NAO-EXISTE", -450, coupon="CUPOM-0300"),
            header=RETURNS_HEADER,
        ),
        "fechamento-LOJA02-PDV07-2025-11-19.csv",
        at(WED, 23, 50),
    )
    await treasury.import_(
        closing_file(return_line(ids["credit"], -800, store="LOJA01", terminal="PDV01"), header=RETURNS_HEADER),
        "fechamento-LOJA01-PDV01-2025-11-19.csv",
        at(WED, 23, 50),
    )

    await treasury.run(WED)

    assert await treasury.board() == {
        ("FILE", "SALE", "CUPOM-5780", None): ("RECONCILED", None),
        ("FILE", "SALE", "CUPOM-0300", None): ("RECONCILED", None),
        ("FILE", "RETURN", "CUPOM-5780", ids["pool"]): ("DIVERGENT", None),  # amount differs
        ("FILE", "RETURN", "CUPOM-0300", "R9-NAO-EXISTE"): ("NOT_RECONCILED", "LEDGER"),  # not in the ledger
        ("FILE", "RETURN", "CUPOM-5780", ids["credit"]): ("NOT_RECONCILED", "LEDGER"),  # not at that terminal
        ("LEDGER", "RETURN", "CUPOM-5780", ids["credit"]): ("NOT_RECONCILED", "FILE"),  # not in PDV07's file
    }
    [divergent] = await treasury.return_lines(ids["pool"])
    assert (divergent.amount, divergent.ledger_amount) == (-1500, -1200)
    assert divergent.note == (
        f"the ledger's return {ids['pool']} is R$ 12,00, the file says R$ 15,00 (they differ by R$ 3,00)"
    )
    [unknown] = await treasury.return_lines("R9-NAO-EXISTE")
    assert unknown.note == rec.NO_RETURN
    [elsewhere] = await treasury.return_lines(ids["credit"])
    assert elsewhere.note == (
        f"the ledger's return {ids['credit']} was taken at LOJA02 PDV07 on 2025-11-19, of the sale CUPOM-5780 "
        "(EMP001 CLI001): not where, when or of what this line says"
    )
    [forgotten] = await treasury.return_lines(ids["credit"], origin="LEDGER")
    assert (forgotten.store, forgotten.terminal, forgotten.business_date) == ("LOJA02", "PDV07", WED)
    assert (forgotten.amount, forgotten.empenho_id, forgotten.note) == (-800, ids["sale"], rec.NO_RETURN_FILE_YET)
    # nothing reconciled, nothing taken off the receivable
    assert await treasury.receivable("EMP001") == ([("RECONCILED", 5780, 5780), ("RECONCILED", 300, 6080)], 6080)

    # PDV07's corrected file: the right amount takes the return from the divergent line
    await treasury.import_(
        closing_file(return_line(ids["pool"], -1200), return_line(ids["credit"], -800), header=RETURNS_HEADER),
        "fechamento-LOJA02-PDV07-2025-11-19-corrigido.csv",
        at(THU, 9),
    )
    await treasury.run(THU)

    wrong, corrected = await treasury.return_lines(ids["pool"])
    assert (corrected.state, corrected.ledger_amount) == ("RECONCILED", -1200)
    assert (wrong.state, wrong.missing) == ("NOT_RECONCILED", "LEDGER")
    assert wrong.note == (
        f"the ledger's return {ids['pool']} is matched by record {corrected.id}: the return is reported twice"
    )
    elsewhere, credit = await treasury.return_lines(ids["credit"])
    [ledger_side] = await treasury.return_lines(ids["credit"], origin="LEDGER")
    assert (credit.state, elsewhere.state) == ("RECONCILED", "NOT_RECONCILED")
    assert (ledger_side.state, ledger_side.partner) == ("RECONCILED", credit.id)
    _, balance = await treasury.receivable("EMP001")
    assert balance == 6080 - 1200

    await treasury.run(WED + datetime.timedelta(days=4))  # past the look-back of Wednesday's lines
    assert [r.state for r in await treasury.return_lines(ids["pool"])] == ["FAILED", "RECONCILED"]
    assert [r.state for r in await treasury.return_lines("R9-NAO-EXISTE")] == ["FAILED"]
    assert [r.state for r in await treasury.return_lines(ids["credit"])] == ["FAILED", "RECONCILED"]


async def test_undoing_a_return_puts_it_back_and_a_reversal_takes_only_what_the_returns_left(
    seed: Terminal, svc, clock: Clock, ledger_url, treasury: Treasury
) -> None:
    set_clock(clock, MON, 10)
    sale = await sell(seed, svc, 5780, "CUPOM-5780")
    set_clock(clock, TUE, 11)
    returned = await give_part_back(seed, sale, 1200)
    await writer.drain(svc, ledger_url)
    await treasury.import_(closing_file(sale_line("CUPOM-5780", 5780)))
    await treasury.import_(
        closing_file(return_line(returned, -1200, day=TUE, store="LOJA01", terminal="PDV01"), header=RETURNS_HEADER),
        "fechamento-terca.csv",
        at(TUE, 22),
    )
    await treasury.run(TUE)
    [line] = await treasury.return_lines(returned)
    assert line.state == "RECONCILED"

    undone = await treasury.undo(line.id, at(WED, 9), note="devolução conferida de novo")
    assert [(r.state, r.return_id, r.empenho_id) for r in undone] == [("NOT_RECONCILED", returned, None)]
    await treasury.run(WED)
    assert [r.state for r in await treasury.return_lines(returned)] == ["RECONCILED"]

    set_clock(clock, WED, 10)
    await give_back(seed, sale)  # the rest of the sale, R$ 45,80, is reversed
    await writer.drain(svc, ledger_url)
    await treasury.run(WED)

    [reversed_] = [r for r in await treasury.lines("CUPOM-5780") if r.type == "SALE"]
    assert (reversed_.state, reversed_.ledger_amount) == ("DIVERGENT", 0)
    # the convênio owes nothing for the sale: R$ 12,00 came back by the return, R$ 45,80 by the reversal
    assert await treasury.receivable("EMP001") == (
        [
            ("RECONCILED", 5780, 5780),
            ("RETURN", -1200, 4580),
            ("RETURN_UNDONE", 1200, 5780),
            ("RETURN", -1200, 4580),
            ("REVERSED", -4580, 0),
        ],
        0,
    )
    before = await treasury.fingerprint()
    await treasury.run(WED)
    assert await treasury.fingerprint() == before


async def test_return_lines_in_the_file_format() -> None:
    def problems(*lines: str, header: str = RETURNS_HEADER) -> list[tuple[int, str]]:
        with pytest.raises(rec.BadFile) as refused:
            rec.parse(closing_file(*lines, header=header))
        return [(p.line, p.message) for p in refused.value.problems]

    assert problems(
        return_line("R1-A", 1200),
        return_line("", -1200),
        sale_line("C-1", 100, kind="SALE") + ",R1-B",
        return_line("R1-C", -100),
        return_line("R1-C", -100),
        return_line("R1-D", -100, coupon=""),
    ) == [
        (2, "amount 1200: a return is written negative, the centavos given back (-1200 is R$ 12,00 returned)"),
        (3, "return is empty: a RETURN line names the return's id (the column return)"),
        (4, "return 'R1-B' on a SALE line: only a RETURN line names a return"),
        (6, "the same return as line 5"),
        (7, "coupon is empty"),
    ]
    # without the return column a RETURN line cannot name its return
    assert problems("LOJA02,PDV07,2025-11-19,C-1,EMP001,CLI001,-1200,RETURN", header=HEADER + ",type") == [
        (2, "return is empty: a RETURN line names the return's id (the column return)")
    ]
    lines = rec.parse(
        closing_file(
            sale_line("C-1", 100, returns_column=True),
            return_line("R1-A", -1200),
            "LOJA02,PDV07,2025-11-19,,EMP001,,-35,ADJUSTMENT,",
            header=RETURNS_HEADER,
        )
    )
    assert lines == [
        rec.Line(2, "SALE", "LOJA01", "PDV01", MON, "C-1", "EMP001", "CLI001", 100),
        rec.Line(3, "RETURN", "LOJA02", "PDV07", WED, "CUPOM-5780", "EMP001", "CLI001", -1200, "R1-A"),
        rec.Line(4, "ADJUSTMENT", "LOJA02", "PDV07", WED, "", "EMP001", "", -35),
    ]


# --- the file's format ---------------------------------------------------------------------------
async def test_a_bad_file_is_refused_whole_naming_every_bad_line(treasury: Treasury) -> None:
    bad = closing_file(
        sale_line("CUPOM-1", "5.78"),
        "LOJA01,PDV01,17/11/2025,CUPOM-2,EMP001,CLI001,100",
        sale_line("", 100),
        "LOJA01,PDV01,2025-11-17,CUPOM-4,EMP001,CLI001",
        sale_line("CUPOM-5", 0),
        "",
        sale_line("CUPOM-7", 700),
        sale_line("CUPOM-7", 700),
        "LOJA01,PDV01,2025-02-30,CUPOM-9,EMP001,CLI001,100",
        sale_line("CUPOM-10", 100),
    )
    with pytest.raises(rec.BadFile) as refused:
        await treasury.import_(bad)
    assert [(p.line, p.message) for p in refused.value.problems] == [
        (2, "amount '5.78': expected an integer number of centavos (578 is R$ 5,78)"),
        (3, "date '17/11/2025': expected YYYY-MM-DD"),
        (4, "coupon is empty"),
        (5, "6 field(s) where the header has 7"),
        (6, "amount 0: a sale is more than zero centavos"),
        (9, "the same sale as line 8"),
        (10, "date '2025-02-30' is not a day of the calendar"),
    ]
    assert await treasury.counts() == dict.fromkeys(
        ("closing_files", "reconciliation_records", "reconciliation_history", "receivable_movements"), 0
    )

    def problems(data: bytes) -> list[tuple[int, str]]:
        with pytest.raises(rec.BadFile) as refused:
            rec.parse(data)
        return [(p.line, p.message) for p in refused.value.problems]

    assert problems(b"") == [(1, f"the first line must be the header {rec.HEADER}")]
    assert problems(closing_file(header="store,terminal,date,coupon,convenio,valor")) == [
        (1, f"missing column(s) participant, amount; unknown column(s) valor (the header is {rec.HEADER})")
    ]
    assert problems(closing_file(sale_line("C-1", 100, kind="VENDA"), header=HEADER + ",type")) == [
        (2, "type 'VENDA': expected SALE, RETURN, ADJUSTMENT or INFO")
    ]
    good = closing_file(sale_line("C-1", 100)) + b"LOJA01,PDV01,2025-11-17,C-"
    assert problems(good + b"\xff,EMP001,CLI001,1\n") == [(3, f"not UTF-8 text (byte {len(good)})")]

    # a spreadsheet's export: BOM, semicolons, CRLF, columns in another order, upper-case names
    exported = (
        "\ufeffAMOUNT;Date;Store;Terminal;Coupon;Convenio;Participant;Type\r\n"
        "578;2025-11-17;LOJA01;PDV01;C-1;EMP001;CLI001;\r\n"
    )
    [line] = rec.parse(exported.encode())
    assert line == rec.Line(2, "SALE", "LOJA01", "PDV01", MON, "C-1", "EMP001", "CLI001", 578)


# --- the command line ----------------------------------------------------------------------------
def _invoke(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(reconcile, args, env=env, catch_exceptions=False)


async def convenio_reconcile(env: dict[str, str], *args: str) -> Result:
    """`convenio reconcile ARGS` (asyncio.run inside, so in a thread of its own)."""
    return await asyncio.to_thread(_invoke, list(args), env)


async def test_the_reconcile_command_for_operators_and_scripts(
    seed: Terminal, svc, clock: Clock, ledger_url, tmp_path: Path
) -> None:
    set_clock(clock, MON, 10)
    await sell(seed, svc, 578, "CUPOM-1")
    await writer.drain(svc, ledger_url)
    env = {"DATABASE_URL": ledger_url}
    good = tmp_path / "fechamento.csv"
    good.write_bytes(closing_file(sale_line("CUPOM-1", 578), sale_line("CUPOM-9", 400)))
    bad = tmp_path / "fechamento-ruim.csv"
    bad.write_bytes(closing_file(sale_line("CUPOM-1", "5.78")))

    for sub in ([], ["import"], ["run"], ["undo"], ["list"], ["history"], ["receivables"]):
        helped = await convenio_reconcile(env, *sub, "--help")
        assert helped.exit_code == 0 and "Usage:" in helped.stdout, sub

    r = await convenio_reconcile(env, "import", str(good), "--by", "ana", "--json")
    assert r.exit_code == 0, r.output
    imported = json.loads(r.stdout)
    assert (imported["already_imported"], imported["lines"], imported["sales_amount"], imported["imported_by"]) == (
        False,
        2,
        978,
        "ana",
    )
    r = await convenio_reconcile(env, "import", str(good))
    assert r.exit_code == 0 and "nothing changed" in r.stdout

    r = await convenio_reconcile(env, "import", str(bad), "--json")
    assert r.exit_code == 1
    assert json.loads(r.stdout)["problems"] == [
        {"line": 2, "message": "amount '5.78': expected an integer number of centavos (578 is R$ 5,78)"}
    ]
    assert "line 2: amount '5.78'" in r.stderr and "Traceback" not in r.output
    assert (await convenio_reconcile(env, "import", str(tmp_path / "nenhum.csv"))).exit_code == 2

    r = await convenio_reconcile(env, "run", "--date", "2025-11-17", "--by", "ana", "--json")
    assert r.exit_code == 0, r.output
    ran = json.loads(r.stdout)
    assert (ran["date"], ran["window"], ran["window_start"]) == ("2025-11-17", 3, "2025-11-14")
    assert ran["changed"] == {"NOT_RECONCILED": 1, "RECONCILED": 1, "DIVERGENT": 0, "FAILED": 0}
    assert (ran["receivable_movements"], ran["receivable_amount"]) == (1, 578)
    r = await convenio_reconcile(env, "run", "--date", "2025-11-17")
    assert r.exit_code == 0 and "changed: 0 NOT_RECONCILED, 0 RECONCILED" in r.stdout
    assert (await convenio_reconcile(env, "run", "--date", "17/11/2025")).exit_code == 2
    assert (await convenio_reconcile(env, "run", "--window", "-1")).exit_code == 2
    r = await convenio_reconcile(env, "run", "--date", "2999-01-01")
    assert r.exit_code == 1 and "has not come yet" in r.stderr

    r = await convenio_reconcile(env, "list", "--state", "reconciled", "--json")
    listed = json.loads(r.stdout)
    assert r.exit_code == 0 and listed["total"] == 1
    [reconciled] = listed["records"]
    assert (reconciled["coupon"], reconciled["amount"], reconciled["state"]) == ("CUPOM-1", 578, "RECONCILED")
    r = await convenio_reconcile(env, "list", "--date", "2025-11-17", "--limit", "1")
    assert r.exit_code == 0 and "1 of 2 record(s)" in r.stderr

    r = await convenio_reconcile(env, "history", str(reconciled["id"]), "--json")
    assert r.exit_code == 0
    assert [(h["state"], h["by"]) for h in json.loads(r.stdout)["history"]] == [
        ("NOT_RECONCILED", "ana"),
        ("RECONCILED", "ana"),
    ]

    missing = json.loads((await convenio_reconcile(env, "list", "--state", "NOT_RECONCILED", "--json")).stdout)
    r = await convenio_reconcile(env, "undo", str(missing["records"][0]["id"]))
    assert r.exit_code == 1 and "only a RECONCILED or DIVERGENT record can be undone" in r.stderr
    r = await convenio_reconcile(env, "undo", "999999", "--json")
    assert r.exit_code == 1 and json.loads(r.stdout) == {"error": "no reconciliation record 999999"}
    r = await convenio_reconcile(env, "undo", str(reconciled["id"]), "--note", "conferir", "--by", "bia", "--json")
    assert r.exit_code == 0, r.output
    assert [u["state"] for u in json.loads(r.stdout)["undone"]] == ["NOT_RECONCILED"]

    r = await convenio_reconcile(env, "receivables", "--convenio", "EMP001", "--json")
    account = json.loads(r.stdout)
    assert r.exit_code == 0 and account["balance"] == 0
    assert [(m["kind"], m["amount"], m["by"]) for m in account["movements"]] == [
        ("RECONCILED", 578, "ana"),
        ("UNDONE", -578, "bia"),
    ]
    r = await convenio_reconcile(env, "receivables")
    assert r.exit_code == 0 and "EMP001  R$ 0,00  (2 movement(s))" in r.stdout
    r = await convenio_reconcile(env, "receivables", "--convenio", "EMP404")
    assert r.exit_code == 1 and "no convênio EMP404" in r.stderr

    nowhere = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/ledger"}
    r = await convenio_reconcile(nowhere, "list")
    assert r.exit_code == 3 and "cannot reach" in r.stderr and "Traceback" not in r.output


async def test_the_reconcile_command_shows_the_return_lines(
    seed: Terminal, svc, clock: Clock, ledger_url, tmp_path: Path
) -> None:
    ids = await bought_monday_returned_wednesday(seed, svc, clock, ledger_url)
    env = {"DATABASE_URL": ledger_url}
    wednesday = tmp_path / "fechamento-LOJA02-PDV07-2025-11-19.csv"
    wednesday.write_bytes(closing_file(return_line(ids["pool"], -1200), header=RETURNS_HEADER))

    r = await convenio_reconcile(env, "import", str(wednesday))
    assert r.exit_code == 0, r.output
    assert "1 line(s), 0 sale(s) (R$ 0,00), 1 return(s) (R$ 12,00 given back), 0 informative" in r.stdout
    r = await convenio_reconcile(env, "run", "--date", "2025-11-19", "--json")
    ran = json.loads(r.stdout)
    assert (ran["ledger_sales_seen"], ran["ledger_returns_seen"], ran["receivable_amount"]) == (2, 2, -1200)

    listed = json.loads((await convenio_reconcile(env, "list", "--date", "2025-11-19", "--json")).stdout)
    returns = {
        (x["origin"], x["return"]): (x["state"], x["amount"]) for x in listed["records"] if x["type"] == "RETURN"
    }
    assert returns == {
        ("FILE", ids["pool"]): ("RECONCILED", -1200),
        ("LEDGER", ids["credit"]): ("NOT_RECONCILED", -800),
    }
    r = await convenio_reconcile(env, "list", "--date", "2025-11-19", "--state", "NOT_RECONCILED")
    assert f"CUPOM-5780 RETURN {ids['credit']} EMP001 CLI001 -R$ 8,00 NOT_RECONCILED missing:FILE" in r.stdout
    [forgotten] = [x for x in listed["records"] if x["return"] == ids["credit"]]
    r = await convenio_reconcile(env, "history", str(forgotten["id"]))
    assert f"ledger return {ids['credit']}" in r.stdout and rec.NO_RETURN_FILE_YET in r.stdout
    r = await convenio_reconcile(env, "receivables", "--convenio", "EMP001")
    assert "RETURN          -R$ 12,00" in r.stdout and f"return {ids['pool']}" in r.stdout
