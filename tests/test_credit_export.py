"""Finance's export: every debit and credit of a period with its reference and type,
as CSV and JSON from `convenio credits export`, and page by page over HTTP."""

from __future__ import annotations

import asyncio
import csv
import datetime
import io
import json
from typing import Any

import pytest
from click.testing import CliRunner

from gateway.auth.permissions import Permission
from gateway.platform.clock import LOCAL
from ledger.ops import cli as ops_cli
from ledger.writer import writer
from tests.checkout import BackOffice, Clock, Terminal, assert_error
from tests.test_credits import Account


@pytest.fixture
async def account(client, backoffice: BackOffice, seed: Terminal, clock: Clock) -> Account:
    return Account(client, backoffice, seed, clock)


@pytest.fixture
def env(svc, ledger_url) -> dict[str, str]:
    return {"DATABASE_URL": ledger_url}


async def export(env: dict[str, str], *args: str) -> Any:
    """`convenio credits export ARGS` in a thread of its own (it runs its own event loop)."""
    return await asyncio.to_thread(
        CliRunner().invoke, ops_cli.credits, ["export", *args], env=env, catch_exceptions=False
    )


def at_local(clock: Clock, y: int, m: int, d: int, hh: int = 12) -> None:
    clock.now = int(datetime.datetime(y, m, d, hh, tzinfo=LOCAL).timestamp() * 1000)


async def a_month_of_credits(account: Account, clock: Clock, svc, ledger_url) -> dict[str, str]:
    """November: a return credit and a cashback are registered; order PED-1 uses both and is
    delivered; order PED-2 is delivered and then returned. December: a manual credit."""
    at_local(clock, 2026, 11, 3)
    await account.registered("CLI001", "DEV-1103", "DEVOLUCAO", 1500, expires_in_days=60)
    await account.registered("CLI001", "CB-1103", "CASHBACK", 500, expires_in_days=30)
    at_local(clock, 2026, 11, 10)
    one = await account.held("CLI001", 1200, "PED-1")
    assert (await account.commit(one["id"], coupon="NF-1")).status_code == 200
    at_local(clock, 2026, 11, 20)
    two = await account.held("CLI001", 600, "PED-2")
    assert (await account.commit(two["id"], coupon="NF-2")).status_code == 200
    at_local(clock, 2026, 11, 30, 23)  # still November where the store is (02:00 UTC on Dec 1st)
    assert (await account.cancel(two["id"], reason="devolvido")).status_code == 200
    at_local(clock, 2026, 12, 2)
    await account.registered("CLI001", "MAN-1202", "MANUAL", 700)
    await writer.drain(svc, ledger_url)
    return {"PED-1": one["id"], "PED-2": two["id"]}


async def test_november_in_json_lists_each_debit_and_credit_with_reference_and_type(
    account: Account, clock: Clock, svc, ledger_url, env
) -> None:
    holds = await a_month_of_credits(account, clock, svc, ledger_url)
    r = await export(env, "--from", "2026-11-01", "--to", "2026-11-30", "--format", "json")
    assert r.exit_code == 0, r.output
    exported = json.loads(r.stdout)
    lines = [
        (m["local_date"], m["kind"], m["reference"], m["type"], m["amount"], m["order"]) for m in exported["movements"]
    ]
    assert lines == [
        ("2026-11-03", "CREDIT", "DEV-1103", "DEVOLUCAO", 1500, None),
        ("2026-11-03", "CREDIT", "CB-1103", "CASHBACK", 500, None),
        ("2026-11-10", "DEBIT", "CB-1103", "CASHBACK", -500, "PED-1"),
        ("2026-11-10", "DEBIT", "DEV-1103", "DEVOLUCAO", -700, "PED-1"),
        ("2026-11-20", "DEBIT", "DEV-1103", "DEVOLUCAO", -600, "PED-2"),
        ("2026-11-30", "RETURN", "DEV-1103", "DEVOLUCAO", 600, "PED-2"),
    ]
    assert [m["hold"] for m in exported["movements"][2:]] == [holds["PED-1"]] * 2 + [holds["PED-2"]] * 2
    assert exported["totals"] == {
        "credits": 1500 + 500 + 600,
        "debits": -(500 + 700 + 600),
        "count": 6,
        "by_type": {"CASHBACK": {"credits": 500, "debits": -500}, "DEVOLUCAO": {"credits": 2100, "debits": -1300}},
    }
    assert "6 movement(s)" in r.stderr


async def test_the_same_period_in_csv(account: Account, clock: Clock, svc, ledger_url, env, tmp_path) -> None:
    await a_month_of_credits(account, clock, svc, ledger_url)
    r = await export(env, "--from", "2026-11-01", "--to", "2026-12-31")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [(row["kind"], row["reference"], row["type"], row["amount"]) for row in rows] == [
        ("CREDIT", "DEV-1103", "DEVOLUCAO", "1500"),
        ("CREDIT", "CB-1103", "CASHBACK", "500"),
        ("DEBIT", "CB-1103", "CASHBACK", "-500"),
        ("DEBIT", "DEV-1103", "DEVOLUCAO", "-700"),
        ("DEBIT", "DEV-1103", "DEVOLUCAO", "-600"),
        ("RETURN", "DEV-1103", "DEVOLUCAO", "600"),
        ("CREDIT", "MAN-1202", "MANUAL", "700"),
    ]
    assert rows[0]["customer"] == "CLI001" and rows[0]["order"] == "" and rows[2]["order"] == "PED-1"
    assert list(rows[0]) == [
        "seq",
        "at",
        "local_date",
        "customer",
        "kind",
        "type",
        "reference",
        "amount",
        "remaining_after",
        "credit",
        "hold",
        "order",
        "channel",
        "store",
        "terminal",
        "protocol",
        "return_id",
        "sale",
    ]
    out = tmp_path / "dezembro.csv"
    r = await export(env, "--from", "2026-12-01", "--to", "2026-12-31", "--output", str(out))
    assert r.exit_code == 0, r.output
    assert [row["reference"] for row in csv.DictReader(out.open(encoding="utf-8"))] == ["MAN-1202"]


async def test_a_bad_period_is_a_usage_error(env) -> None:
    assert (await export(env, "--from", "2026-11-30", "--to", "2026-11-01")).exit_code == 2
    assert (await export(env, "--from", "30/11/2026", "--to", "2026-12-01")).exit_code == 2
    assert (await export(env, "--to", "2026-12-01")).exit_code == 2


async def test_finance_pages_through_the_period_over_http(
    account: Account, clock: Clock, svc, ledger_url, backoffice: BackOffice
) -> None:
    await a_month_of_credits(account, clock, svc, ledger_url)
    client = account.client
    finance = {"Authorization": f"Bearer {await backoffice.key(Permission.CREDITS)}"}
    seen, after = [], 0
    while True:
        r = await client.get(
            "/v1/credits/movements",
            params={"from": "2026-11-01", "to": "2026-11-30", "limit": 4, "after": after},
            headers=finance,
        )
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [(m["kind"], m["reference"], m["amount"]) for m in page["movements"]]
        if "next_after" not in page:
            break
        after = page["next_after"]
    assert seen == [
        ("CREDIT", "DEV-1103", 1500),
        ("CREDIT", "CB-1103", 500),
        ("DEBIT", "CB-1103", -500),
        ("DEBIT", "DEV-1103", -700),
        ("DEBIT", "DEV-1103", -600),
        ("RETURN", "DEV-1103", 600),
    ]
    terminal = {"Authorization": f"Bearer {await backoffice.key(Permission.EMPENHO)}"}
    assert_error(await client.get("/v1/credits/movements", headers=terminal), 403, "FORBIDDEN")
    r = await client.get("/v1/credits/movements", params={"from": "2026-12-01", "to": "2026-11-01"}, headers=finance)
    assert_error(r, 422, "INVALID_REQUEST", "to")
    assert_error(
        await client.get("/v1/credits/movements", params={"from": "1/11"}, headers=finance),
        422,
        "INVALID_REQUEST",
        "from",
    )


async def test_credits_verify_says_when_redis_and_the_ledger_differ(
    account: Account, clock: Clock, svc, ledger_url
) -> None:
    s = svc.settings
    env = {
        "REDIS_URL": s.redis_url,
        "DATABASE_URL": ledger_url,
        "CONVENIO_KEY_PREFIX": s.key_prefix,
        "CONVENIO_SHARDS": str(s.shards),
        "CONVENIO_PEPPER": "test-pepper",
    }
    await a_month_of_credits(account, clock, svc, ledger_url)

    async def verify() -> Any:
        return await asyncio.to_thread(
            CliRunner().invoke, ops_cli.credits, ["verify", "--wait", "1"], env=env, catch_exceptions=False
        )

    r = await verify()
    assert (r.exit_code, r.stdout.strip()) == (0, "no drift in the customers' credits"), r.output
    await account.held("CLI001", 100, "PED-3")  # not stored yet: the ledger is one hold behind
    r = await verify()
    assert r.exit_code == 1 and "DRIFT credit hold" in r.stdout, r.output
    await writer.drain(svc, ledger_url)
    assert (await verify()).exit_code == 0


@pytest.mark.parametrize("params", [{"to": "9999-12-31"}, {"from": "0001-01-01"}])
async def test_a_date_out_of_range_is_a_422(client, backoffice, params) -> None:
    from gateway.auth.permissions import Permission

    finance = {"Authorization": f"Bearer {await backoffice.key(Permission.CREDITS)}"}
    r = await client.get("/v1/credits/movements", params=params, headers=finance)
    assert r.status_code == 422, r.text
