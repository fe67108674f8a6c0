"""The month's commands as an operator's script runs them: JSON on stdout, exit codes that say
what happened (0 done or already done, 1 refused, 2 usage, 3 the ledger writer is behind,
4 the same run is in progress elsewhere)."""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.cli import main
from ledger.month import jobs
from tests.month import Month, local


@pytest.fixture
async def month(svc, client, backoffice, clock, ledger, ledger_url) -> Month:
    return Month(svc, client, backoffice, clock, ledger, ledger_url)


@pytest.fixture
def env(svc, ledger_url) -> dict[str, str]:
    s = svc.settings
    return {
        "REDIS_URL": s.redis_url,
        "DATABASE_URL": ledger_url,
        "CONVENIO_KEY_PREFIX": s.key_prefix,
        "CONVENIO_SHARDS": str(s.shards),
        "CONVENIO_PEPPER": "test-pepper",
        "CONVENIO_OPERATOR": "maria.tesouraria",
    }


async def convenio(env: dict[str, str], *args: str) -> Any:
    """`convenio ARGS` in a thread of its own (it runs its own event loop)."""
    return await asyncio.to_thread(CliRunner().invoke, main, list(args), env=env, catch_exceptions=False)


async def test_an_operator_bills_lists_settles_and_reads_the_record_of_runs(month: Month, env) -> None:
    month.at(local(2026, 11, 9))
    await month.convenio("EMPC", 100_000, rollover={"policy": "ON_SETTLEMENT"}, billing={"period": "DAILY"})
    ana = await month.participant("EMPC", "ANA", limit=10_000)
    month.at(local(2026, 11, 10, 16))
    await month.sell(ana, 1_234)
    await month.store()

    r = await convenio(env, "duplicatas", "generate", "--convenio", "EMPC", "--date", "2026-11-11", "--json")
    assert r.exit_code == 0, r.output
    run = json.loads(r.stdout)
    assert run["outcome"] == "DONE" and run["counts"]["duplicatas"] == 1 and run["counts"]["amount"] == 1_234

    again = await convenio(env, "duplicatas", "generate", "--convenio", "EMPC", "--date", "2026-11-11", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["outcome"] == "ALREADY_DONE"

    r = await convenio(env, "duplicatas", "list", "--convenio", "EMPC", "--json")
    [dup] = json.loads(r.stdout)
    assert (dup["amount"], dup["status"], dup["period_start"]) == (1_234, "OPEN", "2026-11-10")

    r = await convenio(env, "duplicatas", "settle", dup["id"], "--json")
    assert r.exit_code == 0, r.output
    [paid] = json.loads(r.stdout)
    assert paid["status"] == "PAID" and paid["paid_by"] == "maria.tesouraria" and paid["restore"] == "DONE"
    assert await month.balance("EMPC", "ANA") == 10_000

    r = await convenio(env, "jobs", "--json")
    [recorded] = json.loads(r.stdout)
    assert (recorded["job"], recorded["key"], recorded["outcome"]) == ("duplicatas", "2026-11-11/EMPC", "DONE")
    assert recorded["run_by"] == "maria.tesouraria"


async def test_mistakes_and_conditions_get_their_exit_codes(month: Month, env) -> None:
    r = await convenio(env, "rollover", "--date", "30/11/2026")
    assert r.exit_code == 2 and "YYYY-MM-DD" in r.output
    r = await convenio(env, "duplicatas", "show", "D" + "0" * 26)
    assert r.exit_code == 1 and "no duplicata" in r.output

    # a run of the same job and date in progress elsewhere
    async with month.ledger.acquire() as conn:
        async with jobs.job_run(conn, "rollover", "2026-10-31", month.now):
            r = await convenio(env, "rollover", "--date", "2026-10-31")
    assert r.exit_code == 4 and "in progress" in r.output
    r = await convenio(env, "rollover", "--date", "2026-10-31")  # that one finished meanwhile
    assert r.exit_code == 0 and "already done" in r.output

    # an event the ledger writer has not stored (no writer running): the batch will not read a stale ledger
    month.at(local(2026, 11, 9))
    await month.convenio("EMPL", 1_000)
    r = await convenio(env, "rollover", "--date", "2026-11-01", "--ledger-wait", "0.2")
    assert r.exit_code == 3 and "convenio ledger" in r.output
    await month.store()
    r = await convenio(env, "rollover", "--date", "2026-11-01", "--json", "--quiet")
    assert r.exit_code == 0, r.output
    counts = json.loads(r.stdout)["counts"]
    r = await convenio(env, "rollover", "--date", "2099-01-31")
    assert r.exit_code == 1 and "not before" in r.output
    r = await convenio(env, "duplicatas", "generate", "--date", "2099-01-31")
    assert r.exit_code == 1 and "has not come yet" in r.output
    r = await convenio(env, "duplicatas", "generate", "--date", "2026-11-01", "--convenio", "NOPE")
    assert r.exit_code == 1 and "no convênio" in r.output
    assert (counts["convenios"], counts["pools"]) == (1, 0)  # the default: MONTHLY on the 1st, nobody in it yet


def test_every_month_command_has_help() -> None:
    runner = CliRunner()
    for args in (
        ["rollover"],
        ["duplicatas"],
        ["duplicatas", "generate"],
        ["duplicatas", "list"],
        ["duplicatas", "show"],
        ["duplicatas", "settle"],
        ["duplicatas", "restore"],
        ["duplicatas", "overdue"],
        ["scheduler"],
        ["jobs"],
        ["reconcile"],
        ["closing"],
    ):
        r = runner.invoke(main, [*args, "--help"])
        assert r.exit_code == 0 and "Usage:" in r.output, args


def test_dates_are_local_days() -> None:
    from gateway.platform.clock import local_start
    from ledger.month.calendar import rollover_date

    assert rollover_date(2026, 2, 31) == datetime.date(2026, 2, 28)
    assert rollover_date(2028, 2, 30) == datetime.date(2028, 2, 29)
    assert local_start(datetime.date(2026, 11, 30)).isoformat() == "2026-11-30T03:00:00+00:00"
