"""The reconciliation over HTTP: the treasury uploads a terminal's closing file, runs the
reconciliation, reads the records and their histories, undoes one, reconciles selected records,
reads the cash closing and the receivables; a terminal posts its own closing at the end of the
shift; a folder watched imports what is dropped in it; the scheduler's runs are listed.
Sales go through the real API and the real ledger writer; every time is the test's own."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
from click.testing import CliRunner

from gateway.auth import apikeys
from gateway.auth.permissions import Permission
from gateway.stores import stores
from gateway.stores.schemas import StoreCreate
from ledger.month import jobs
from ledger.reconciliation.cli import reconcile
from ledger.writer import writer
from tests.checkout import BackOffice, Clock, Terminal, assert_error
from tests.test_reconciliation import MON, TUE, at, closing_file, sale_line, sell, set_clock

FILE_NAME = "fechamento-LOJA01-PDV01-2025-11-17.csv"


class Office:
    """The treasury at the back office's API."""

    def __init__(self, backoffice: BackOffice) -> None:
        self.client, self.headers = backoffice.client, backoffice.headers

    async def upload(self, data: bytes, name: str = FILE_NAME, expect: int = 201) -> dict[str, Any]:
        r = await self.client.post(
            "/v1/reconciliation/files", json={"name": name, "content": data.decode()}, headers=self.headers
        )
        assert r.status_code == expect, r.text
        return r.json()

    async def run(self, body: dict[str, Any]) -> dict[str, Any]:
        r = await self.client.post("/v1/reconciliation/runs", json=body, headers=self.headers)
        assert r.status_code == 200, r.text
        return r.json()

    async def records(self, **query: str) -> list[dict[str, Any]]:
        r = await self.client.get("/v1/reconciliation/records", params=query, headers=self.headers)
        assert r.status_code == 200, r.text
        return r.json()["records"]

    async def states(self, **query: str) -> dict[tuple[str, str], str]:
        return {(x["origin"], x["coupon"]): x["state"] for x in await self.records(**query)}

    async def get(self, url: str, **query: str) -> dict[str, Any]:
        r = await self.client.get(url, params=query, headers=self.headers)
        assert r.status_code == 200, r.text
        return r.json()


async def a_monday_with_one_real_sale(seed: Terminal, svc, clock: Clock, ledger_url: str, office: Office) -> None:
    """CLIENTE 001 buys R$ 5,78 at LOJA01 / PDV01 on Monday (CUPOM-1); the closing file also
    reports CUPOM-9, R$ 4,00, which the ledger never saw."""
    set_clock(clock, MON, 10)
    await sell(seed, svc, 578, "CUPOM-1")
    await writer.drain(svc, ledger_url)
    set_clock(clock, MON, 22)
    imported = await office.upload(closing_file(sale_line("CUPOM-1", 578), sale_line("CUPOM-9", 400)))
    assert (imported["already_imported"], imported["lines"], imported["sales_amount"]) == (False, 2, 978)


async def test_the_treasury_reconciles_a_closing_file_over_http(
    seed: Terminal, svc, clock: Clock, ledger_url, backoffice: BackOffice
) -> None:
    office = Office(backoffice)
    await a_monday_with_one_real_sale(seed, svc, clock, ledger_url, office)
    again = await office.upload(closing_file(sale_line("CUPOM-1", 578), sale_line("CUPOM-9", 400)), expect=200)
    assert again["already_imported"] is True

    refused = await office.client.post(
        "/v1/reconciliation/files",
        json={"name": "ruim.csv", "content": closing_file(sale_line("CUPOM-1", "5.78")).decode()},
        headers=office.headers,
    )
    error = assert_error(refused, 422, "RECONCILIATION_FILE_INVALID")
    assert error["problems"] == [
        {"line": 2, "message": "amount '5.78': expected an integer number of centavos (578 is R$ 5,78)"}
    ]

    set_clock(clock, MON, 23)
    ran = await office.run({"date": "2025-11-17", "window": 3})
    assert (ran["date"], ran["window_start"]) == ("2025-11-17", "2025-11-14")
    assert ran["changed"] == {"NOT_RECONCILED": 1, "RECONCILED": 1, "DIVERGENT": 0, "FAILED": 0}
    assert await office.states() == {("FILE", "CUPOM-1"): "RECONCILED", ("FILE", "CUPOM-9"): "NOT_RECONCILED"}
    assert await office.states(state="RECONCILED", store="LOJA01", date="2025-11-17") == {
        ("FILE", "CUPOM-1"): "RECONCILED"
    }
    assert await office.states(store="LOJA02") == {}
    assert await office.states(**{"from": "2025-11-18"}) == {}
    first = await office.client.get("/v1/reconciliation/records", params={"limit": "1"}, headers=office.headers)
    assert first.json()["next_after"] == first.json()["records"][0]["id"]

    [reconciled] = await office.records(state="RECONCILED")
    shown = await office.get(f"/v1/reconciliation/records/{reconciled['id']}")
    key = backoffice.headers["Authorization"]
    assert key not in str(shown)
    assert [(h["state"], h["by"].startswith("apikey:")) for h in shown["history"]] == [
        ("NOT_RECONCILED", True),
        ("RECONCILED", True),
    ]
    assert shown["record"]["ledger_amount"] == 578
    account = await office.get("/v1/convenios/EMP001/receivables")
    assert (account["balance"], [m["kind"] for m in account["movements"]]) == (578, ["RECONCILED"])
    assert await office.get("/v1/receivables") == {
        "convenios": [{"convenio": "EMP001", "movements": 1, "balance": 578}]
    }

    # Excluir Conciliação: back to NOT_RECONCILED, the receivable gets the counter-movement
    r = await office.client.post(
        f"/v1/reconciliation/records/{reconciled['id']}/undo", json={"note": "conferir"}, headers=office.headers
    )
    assert r.status_code == 200, r.text
    assert [u["state"] for u in r.json()["undone"]] == ["NOT_RECONCILED"]
    again_undo = await office.client.post(f"/v1/reconciliation/records/{reconciled['id']}/undo", headers=office.headers)
    assert_error(again_undo, 409, "RECONCILIATION_NOT_UNDOABLE")
    assert (await office.get("/v1/convenios/EMP001/receivables"))["balance"] == 0

    # Conciliar on the one record selected: it is matched again, nothing else is tried
    open_ = await office.records(state="NOT_RECONCILED", convenio="EMP001", terminal="PDV01")
    assert sorted(x["coupon"] for x in open_) == ["CUPOM-1", "CUPOM-9"]
    [missing] = [x for x in open_ if x["coupon"] == "CUPOM-1"]
    selected = await office.run({"records": [missing["id"]]})
    assert [(x["id"], x["state"]) for x in selected["records"]] == [(missing["id"], "RECONCILED")]
    assert selected["changed"]["RECONCILED"] == 1 and selected["skipped"] == []
    assert await office.states() == {("FILE", "CUPOM-1"): "RECONCILED", ("FILE", "CUPOM-9"): "NOT_RECONCILED"}
    assert (await office.run({"records": [missing["id"]]}))["skipped"][0]["state"] == "RECONCILED"
    unknown = await office.client.post("/v1/reconciliation/runs", json={"records": [999999]}, headers=office.headers)
    assert_error(unknown, 404, "UNKNOWN_RECONCILIATION_RECORD")

    closing = await office.get("/v1/cash-closing", date="2025-11-17", store="LOJA01")
    [terminal] = closing["terminals"]
    assert (terminal["store"], terminal["terminal"], terminal["totals"]["sales_amount"]) == ("LOJA01", "PDV01", 578)
    assert terminal["reconciliation"]["file_lines"] == 2
    assert terminal["reconciliation"]["states"]["RECONCILED"] == 1


async def test_a_terminal_posts_its_closing_and_the_run_reconciles_it(
    seed: Terminal, svc, clock: Clock, ledger_url, backoffice: BackOffice, ledger: asyncpg.Pool
) -> None:
    office = Office(backoffice)
    await stores.save(svc, "L001", StoreCreate(code="L001", name="LOJA L001"))
    await stores.save_terminal(svc, "L001", "PDV01", "ACTIVE")
    terminal_key, _ = await apikeys.create(svc, frozenset({Permission.EMPENHO}), "PDVs loja 1", store="L001")
    headers = {"Authorization": f"Bearer {terminal_key}"}
    set_clock(clock, MON, 10)
    await sell(seed, svc, 578, "CUPOM-1", store="L001", terminal="PDV01")
    await writer.drain(svc, ledger_url)

    set_clock(clock, MON, 22)
    url = "/v1/stores/L001/terminals/PDV01/closings/2025-11-17"
    body = {"lines": [{"coupon": "CUPOM-1", "convenio": "EMP001", "participant": "CLI001", "amount": 578}]}
    first = await office.client.put(url, json=body, headers=headers)
    assert first.status_code == 200, first.text
    clock.advance(600)
    second = await office.client.put(url, json=body, headers=headers)
    assert (second.status_code, second.json()) == (200, first.json())  # the same answer, nothing more
    async with ledger.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM closing_files") == 1
        assert await conn.fetchval("SELECT count(*) FROM reconciliation_records") == 1

    other = {"lines": [{**body["lines"][0], "amount": 600}]}
    assert_error(await office.client.put(url, json=other, headers=headers), 409, "CLOSING_CONFLICT")
    elsewhere = "/v1/stores/LOJA01/terminals/PDV01/closings/2025-11-17"
    assert_error(await office.client.put(elsewhere, json=body, headers=headers), 403, "STORE_NOT_ALLOWED")
    bad = {"lines": [{"coupon": "CUPOM-2", "convenio": "EMP001", "participant": "CLI001", "amount": 0}]}
    refused = await office.client.put("/v1/stores/L001/terminals/PDV01/closings/2025-11-18", json=bad, headers=headers)
    assert assert_error(refused, 422, "RECONCILIATION_FILE_INVALID")["problems"][0]["line"] == 2

    set_clock(clock, TUE, 1)
    await office.run({"date": "2025-11-17"})
    assert await office.states(store="L001") == {("FILE", "CUPOM-1"): "RECONCILED"}


async def test_a_file_dropped_in_the_watched_folder_is_imported_once(
    seed: Terminal, svc, clock: Clock, ledger_url, backoffice: BackOffice, tmp_path: Path
) -> None:
    office = Office(backoffice)
    (tmp_path / FILE_NAME).write_bytes(closing_file(sale_line("CUPOM-1", 578)))
    (tmp_path / "ruim.csv").write_bytes(closing_file(sale_line("CUPOM-1", "5.78")))
    (tmp_path / "notes.txt").write_text("not a closing")

    def look() -> Any:
        args = ["watch", str(tmp_path), "--once", "--by", "watcher"]
        return CliRunner().invoke(reconcile, args, env={"DATABASE_URL": ledger_url}, catch_exceptions=False)

    r = await asyncio.to_thread(look)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "imported" / FILE_NAME).exists() and not (tmp_path / FILE_NAME).exists()
    assert "imported as file" in (tmp_path / "imported" / f"{FILE_NAME}.log").read_text()
    assert "amount '5.78'" in (tmp_path / "refused" / "ruim.csv.log").read_text()
    assert (tmp_path / "notes.txt").exists()

    # the same file dropped again is known by its content: nothing imported twice
    (tmp_path / FILE_NAME).write_bytes(closing_file(sale_line("CUPOM-1", 578)))
    r = await asyncio.to_thread(look)
    assert r.exit_code == 0 and "nothing changed" in r.stdout
    assert [(x["coupon"], x["file_name"]) for x in await office.records()] == [("CUPOM-1", FILE_NAME)]


async def test_the_scheduler_s_job_runs_are_listed(ledger: asyncpg.Pool, backoffice: BackOffice) -> None:
    async with ledger.acquire() as conn:
        async with jobs.job_run(conn, "reconcile", "2025-11-17", at(TUE, 1), "scheduler") as run:
            run.counts["changed"] = 2
    office = Office(backoffice)
    listed = await office.get("/v1/jobs", job="reconcile")
    [only] = listed["runs"]
    assert (only["job"], only["key"], only["outcome"], only["counts"], only["run_by"]) == (
        "reconcile",
        "2025-11-17",
        "DONE",
        {"changed": 2},
        "scheduler",
    )
    assert (await office.get("/v1/jobs", job="rollover"))["runs"] == []
