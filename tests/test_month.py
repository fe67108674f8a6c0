"""A convênio's month under each rollover policy: sales, reversals, the 23:30 rollover,
duplicatas, settlement and overdue blocking, checked to the centavo, with the test's clock
(nothing here waits for time to pass)."""

from __future__ import annotations

import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ledger.month import balance_batch, duplicatas, jobs, scheduler
from tests.checkout import assert_error
from tests.month import Month, local

D = datetime.date


@pytest.fixture
async def month(svc, client, backoffice, clock, ledger, ledger_url) -> Month:
    return Month(svc, client, backoffice, clock, ledger, ledger_url)


async def billed_once(month: Month, convenio: str) -> None:
    """Every sale and reversal of the convênio is in exactly one duplicata."""
    async with month.ledger.acquire() as conn:
        movements = {
            r["protocol"]
            for r in await conn.fetch(
                "SELECT protocol FROM movements WHERE convenio = $1 AND kind IN ('SALE', 'REVERSAL')", convenio
            )
        }
        items = [
            r["movement"]
            for r in await conn.fetch(
                "SELECT i.movement FROM duplicata_items i JOIN duplicatas d ON d.id = i.duplicata"
                " WHERE d.convenio = $1",
                convenio,
            )
        ]
    assert sorted(items) == sorted(movements)


async def no_drift(month: Month) -> None:
    report = await month.verify()
    assert report.differences == [], [d.line() for d in report.differences]


# -- MONTHLY ------------------------------------------------------------------------------------
async def test_a_monthly_convenio_rolls_over_on_its_day_at_2330_and_bills_the_closed_month(month: Month) -> None:
    month.at(local(2026, 11, 2, 9))
    # day 31 in November means its last day, the 30th
    await month.convenio(
        "EMPM", 100_000, rollover={"policy": "MONTHLY", "day": 31}, billing={"automatic": True, "period": "MONTHLY"}
    )
    ana = await month.participant("EMPM", "ANA", limit=30_000)
    bia = await month.participant("EMPM", "BIA", limit=20_000)

    month.at(local(2026, 11, 10, 15))
    await month.sell(ana, 5_000)
    await month.sell(bia, 2_000)
    returned = await month.sell(ana, 1_000)
    month.at(local(2026, 11, 12, 10))
    await month.reverse(ana, returned)
    month.at(local(2026, 11, 30, 23, 25))
    pending = await month.hold(ana, 700)
    assert await month.balance("EMPM", "ANA") == 25_000

    # not its day: nothing happens
    month.at(local(2026, 11, 29, 23, 31))
    run = await month.rollover(D(2026, 11, 29))
    assert run.counts["convenios"] == 0

    month.at(local(2026, 11, 30, 23, 30))
    run = await month.rollover(D(2026, 11, 30))
    assert run.counts == {"convenios": 1, "pools": 2, "changed": 2, "skipped": 0, "missing": 0}
    assert await month.balance("EMPM", "ANA") == 30_000
    assert await month.balance("EMPM", "BIA") == 20_000
    assert await month.reserved("EMPM", "ANA") == 700  # the pending hold survived
    month.at(local(2026, 11, 30, 23, 35))
    r = await ana.commit(pending)
    assert r.status_code == 200 and r.json()["balance"] == 29_300

    # a sale after the rollover; running the date again, for all or by hand, changes nothing
    month.at(local(2026, 11, 30, 23, 40))
    await month.sell(bia, 300)
    again = await month.rollover(D(2026, 11, 30))
    assert again.already_done
    by_hand = await month.rollover(D(2026, 11, 30), convenio="EMPM")
    assert by_hand.counts["changed"] == 0 and by_hand.counts["skipped"] == 2
    assert await month.balance("EMPM", "BIA") == 19_700

    # the night of the 1st bills November: sales less the reversal, the 23:40 sale included
    month.at(local(2026, 12, 1, 1))
    await month.sell(ana, 111)  # December's: not on November's bill
    run = await month.bill(D(2026, 12, 1))
    assert run.counts["duplicatas"] == 1
    [dup] = await month.duplicatas("EMPM")
    assert (dup["period_start"], dup["period_end"]) == ("2026-11-01", "2026-12-01")
    assert dup["amount"] == 5_000 + 2_000 + 1_000 - 1_000 + 700 + 300
    assert sorted(line["amount"] for line in dup["lines"]) == [-1_000, 300, 700, 1_000, 2_000, 5_000]
    assert dup["participant"] is None and dup["payment_method"] == "BOLETO" and dup["due_date"] == "2026-12-11"
    assert dup["restore"] == "NONE"  # MONTHLY gives nothing back on billing
    assert (await month.bill(D(2026, 12, 1))).already_done

    settled = await month.settle(dup["id"], by="tesouraria")
    assert settled["status"] == "PAID" and settled["paid_by"] == "tesouraria"
    assert await month.balance("EMPM", "ANA") == 30_000 - 700 - 111
    await no_drift(month)


async def test_a_shared_pool_rolls_over_as_one_balance(month: Month) -> None:
    month.at(local(2026, 11, 3))
    await month.convenio("POOL", 50_000, shared=True, rollover={"policy": "MONTHLY", "day": 15})
    ana = await month.participant("POOL", "ANA")
    await month.sell(ana, 12_345)
    await month.hold(ana, 55)
    month.at(local(2026, 11, 15, 23, 30))
    run = await month.rollover(D(2026, 11, 15))
    assert run.counts["changed"] == 1
    assert await month.balance("POOL") == 50_000
    assert await month.reserved("POOL") == 55
    await no_drift(month)


# -- ON_BILLING ---------------------------------------------------------------------------------
async def test_on_billing_gives_the_billed_amount_back_and_bills_a_reversal_as_a_negative_item(month: Month) -> None:
    month.at(local(2026, 11, 9))
    await month.convenio(
        "EMPB", 100_000, rollover={"policy": "ON_BILLING"}, billing={"automatic": True, "period": "DAILY"}
    )
    ana = await month.participant("EMPB", "ANA", limit=10_000)
    bia = await month.participant("EMPB", "BIA", limit=10_000)

    month.at(local(2026, 11, 10, 18))
    sale = await month.sell(ana, 4_000)
    await month.sell(bia, 1_000)
    assert await month.balance("EMPB", "ANA") == 6_000

    month.at(local(2026, 11, 11, 1))
    run = await month.bill(D(2026, 11, 11))
    assert run.counts == {"convenios": 1, "duplicatas": 1, "amount": 5_000, "restored": 1}
    assert await month.balance("EMPB", "ANA") == 10_000
    assert await month.balance("EMPB", "BIA") == 10_000

    # the 10th's sale comes back on the 11th: the balance gets it now, the next bill takes it off
    month.at(local(2026, 11, 11, 9))
    await month.reverse(ana, sale)
    await month.sell(ana, 500)
    assert await month.balance("EMPB", "ANA") == 13_500

    month.at(local(2026, 11, 12, 1))
    await month.bill(D(2026, 11, 12))
    second = next(d for d in await month.duplicatas("EMPB") if d["period_start"] == "2026-11-11")
    assert second["amount"] == -3_500
    assert sorted((line["kind"], line["amount"]) for line in second["lines"]) == [("REVERSAL", -4_000), ("SALE", 500)]
    assert await month.balance("EMPB", "ANA") == 10_000
    await billed_once(month, "EMPB")
    await no_drift(month)


# -- ON_SETTLEMENT ------------------------------------------------------------------------------
async def test_on_settlement_gives_back_when_paid_and_bills_in_each_participants_name(month: Month) -> None:
    month.at(local(2026, 11, 4))
    await month.convenio(
        "EMPS",
        50_000,
        shared=True,
        rollover={"policy": "ON_SETTLEMENT"},
        billing={"automatic": True, "period": "MONTHLY", "in_participant_name": True, "payment_method": "PIX"},
    )
    ana = await month.participant("EMPS", "ANA")
    bia = await month.participant("EMPS", "BIA")
    await month.sell(ana, 3_000)
    await month.sell(bia, 2_000)

    month.at(local(2026, 12, 1, 1))
    await month.bill(D(2026, 12, 1))
    dups = {d["participant"]: d for d in await month.duplicatas("EMPS")}
    assert {p: d["amount"] for p, d in dups.items()} == {"ANA": 3_000, "BIA": 2_000}
    assert dups["ANA"]["payment_method"] == "PIX"
    assert await month.balance("EMPS") == 45_000  # billing gives nothing back

    month.at(local(2026, 12, 5, 14))
    first = await month.settle(dups["ANA"]["id"])
    assert first["status"] == "PAID" and first["restore"] == "DONE"
    assert await month.balance("EMPS") == 48_000
    again = await month.settle(dups["ANA"]["id"])
    assert again == first
    assert await month.balance("EMPS") == 48_000
    await month.settle(dups["BIA"]["id"])
    assert await month.balance("EMPS") == 50_000
    await no_drift(month)


# -- a job dies half-way ------------------------------------------------------------------------
def dies_at(label: str, calls: int):
    """A progress factory that raises on the calls-th step of the steps named label...: the
    process dying there."""

    def factory(name: str, total: int):
        seen = {"n": 0}

        def tick(n: int) -> None:
            if name.startswith(label):
                seen["n"] += 1
                if seen["n"] == calls:
                    raise KeyboardInterrupt(f"killed during {name}")

        return tick

    return factory


async def test_a_duplicata_run_killed_half_way_bills_every_sale_exactly_once_when_run_again(month: Month) -> None:
    month.at(local(2026, 11, 9))
    terminals = []
    for code in ("EMPA", "EMPB", "EMPC"):
        await month.convenio(code, 100_000, billing={"automatic": True, "period": "DAILY"})
        terminals.append(await month.participant(code, "ANA", limit=10_000))
    month.at(local(2026, 11, 10, 12))
    for i, t in enumerate(terminals):
        await month.sell(t, 100 * (i + 1))
        await month.sell(t, 7)

    month.at(local(2026, 11, 11, 1))
    with pytest.raises(KeyboardInterrupt):
        await month.bill(D(2026, 11, 11), progress=dies_at("duplicatas", 2))
    async with month.ledger.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM job_runs WHERE job = 'duplicatas'")
        assert row["outcome"] == "FAILED" and "killed" in row["error"]
        assert await conn.fetchval("SELECT count(*) FROM duplicatas") == 2

    month.at(local(2026, 11, 11, 1, 5))
    run = await month.bill(D(2026, 11, 11))
    assert run.resumed and run.attempts == 2 and run.counts["duplicatas"] == 1
    for code in ("EMPA", "EMPB", "EMPC"):
        [dup] = await month.duplicatas(code)
        assert dup["items"] == 2
        await billed_once(month, code)
    assert [d["amount"] for c in ("EMPA", "EMPB", "EMPC") for d in await month.duplicatas(c)] == [107, 207, 307]


async def test_a_restoration_killed_half_way_gives_each_balance_back_once(month: Month, monkeypatch) -> None:
    monkeypatch.setattr(balance_batch, "CHUNK", 3)
    month.at(local(2026, 11, 9))
    await month.convenio(
        "EMPR", 100_000, rollover={"policy": "ON_BILLING"}, billing={"automatic": True, "period": "DAILY"}
    )
    people = [await month.participant("EMPR", f"P{i}", limit=5_000) for i in range(7)]
    month.at(local(2026, 11, 10, 12))
    for i, t in enumerate(people):
        await month.sell(t, 100 + i)

    month.at(local(2026, 11, 11, 1))
    with pytest.raises(KeyboardInterrupt):
        await month.bill(D(2026, 11, 11), progress=dies_at("restore", 1))  # after the first chunk of 3
    restored = [await month.balance("EMPR", f"P{i}") for i in range(7)]
    assert restored.count(5_000) == 3
    [dup] = await month.duplicatas("EMPR")
    assert dup["restore"] == "PENDING"

    run = await month.bill(D(2026, 11, 11))  # the re-run finds the journal's first chunk
    assert run.resumed and run.counts["restored"] == 1
    assert [await month.balance("EMPR", f"P{i}") for i in range(7)] == [5_000] * 7
    [dup] = await month.duplicatas("EMPR")
    assert dup["restore"] == "DONE"
    await no_drift(month)


# -- overdue ------------------------------------------------------------------------------------
async def test_an_overdue_duplicata_blocks_the_convenio_until_it_is_settled(month: Month) -> None:
    month.at(local(2026, 11, 9))
    billing = {"automatic": True, "period": "DAILY", "due_days": 0, "block_after_days": 2}
    await month.convenio("LATE", 100_000, billing=billing)
    ana = await month.participant("LATE", "ANA", limit=10_000)
    await month.convenio("HAND", 100_000, billing=billing)
    bia = await month.participant("HAND", "BIA", limit=10_000)
    month.at(local(2026, 11, 10, 12))
    await month.sell(ana, 900)
    await month.sell(bia, 900)
    month.at(local(2026, 11, 11, 1))
    await month.bill(D(2026, 11, 11))
    [dup] = await month.duplicatas("LATE")
    assert dup["due_date"] == "2026-11-11"
    # an operator blocked HAND by hand: the overdue check never lifts that block
    r = await month.office.update_convenio("HAND", status="BLOCKED")
    assert r.status_code == 200

    month.at(local(2026, 11, 13, 1))
    assert (await month.overdue(D(2026, 11, 13))).counts["blocked"] == []  # due + 2 days: not yet
    month.at(local(2026, 11, 14, 1))
    run = await month.overdue(D(2026, 11, 14))
    assert run.counts == {"blocked": ["LATE"], "unblocked": []}
    assert await month.status("LATE") == "BLOCKED_OVERDUE"
    assert await month.status("HAND") == "BLOCKED"
    r = await ana.hold(100, proof=None)
    assert_error(r, 422, "CONVENIO_BLOCKED")

    settled = await month.settle(dup["id"])
    assert settled["status"] == "PAID"
    assert await month.status("LATE") == "ACTIVE"
    assert await month.status("HAND") == "BLOCKED"
    await month.sell(ana, 100)
    assert (await month.overdue(D(2026, 11, 14))).already_done
    await no_drift(month)


# -- the scheduler ------------------------------------------------------------------------------
async def test_the_scheduler_runs_each_job_once_at_its_local_time(month: Month) -> None:
    month.at(local(2026, 11, 2))
    await month.convenio("EMPM", 10_000, rollover={"policy": "MONTHLY", "day": 30})
    ana = await month.participant("EMPM", "ANA", limit=1_000)
    month.at(local(2026, 11, 30, 0, 30))
    await month.sell(ana, 250)
    await month.store()

    async def tick(at: datetime.datetime) -> list[tuple[str, str]]:
        month.at(at)
        async with month.ledger.acquire() as conn:
            return [(r["job"], r["outcome"]) for r in await scheduler.tick(month.svc, conn, month.now)]

    assert await tick(local(2026, 11, 30, 0, 59)) == []
    assert await tick(local(2026, 11, 30, 1, 0)) == [("duplicatas", "DONE"), ("overdue", "DONE"), ("reconcile", "DONE")]
    assert await tick(local(2026, 11, 30, 23, 29)) == []
    assert await month.balance("EMPM", "ANA") == 750
    assert await tick(local(2026, 11, 30, 23, 30)) == [("rollover", "DONE")]
    assert await month.balance("EMPM", "ANA") == 1_000
    await month.sell(ana, 40)
    assert await tick(local(2026, 11, 30, 23, 59)) == []
    assert await month.balance("EMPM", "ANA") == 960
    async with month.ledger.acquire() as conn:
        runs = await jobs.list_runs(conn, None, 10)
    assert sorted((r["job"], r["key"], r["outcome"]) for r in runs) == [
        ("duplicatas", "2026-11-30", "DONE"),
        ("overdue", "2026-11-30", "DONE"),
        ("reconcile", "2026-11-30", "DONE"),
        ("rollover", "2026-11-30", "DONE"),
    ]


async def test_a_run_of_the_same_job_and_date_in_progress_is_refused(month: Month) -> None:
    async with month.ledger.acquire() as holder, month.ledger.acquire() as other:
        async with jobs.job_run(holder, "rollover", "2026-11-30", month.now):
            with pytest.raises(jobs.JobBusy):
                async with jobs.job_run(other, "rollover", "2026-11-30", month.now):
                    pass


# -- the back-office API ------------------------------------------------------------------------
async def test_the_back_office_lists_shows_and_settles_duplicatas_over_http(month: Month) -> None:
    month.at(local(2026, 11, 9))
    await month.convenio("EMPH", 100_000, rollover={"policy": "ON_SETTLEMENT"}, billing={"period": "DAILY"})
    ana = await month.participant("EMPH", "ANA", limit=10_000)
    month.at(local(2026, 11, 10, 12))
    await month.sell(ana, 2_500)
    month.at(local(2026, 11, 11, 9))
    await month.bill(D(2026, 11, 11))  # nightly skips it (not automatic): nothing billed
    assert await month.duplicatas("EMPH") == []
    await month.bill(D(2026, 11, 11), convenio="EMPH")  # by hand, for this convênio
    office, client = month.office, month.client

    r = await client.get("/v1/convenios/EMPH/duplicatas", headers=office.headers)
    assert r.status_code == 200, r.text
    [listed] = r.json()["duplicatas"]
    assert listed["amount"] == 2_500 and listed["status"] == "OPEN"
    r = await client.get(f"/v1/duplicatas/{listed['id']}", headers=office.headers)
    assert r.status_code == 200 and [line["amount"] for line in r.json()["lines"]] == [2_500]

    reader = {"Authorization": f"Bearer {await office.key(603)}"}
    assert_error(await client.post(f"/v1/duplicatas/{listed['id']}/settle", headers=reader), 403, "FORBIDDEN")
    assert_error(
        await client.get("/v1/duplicatas/D00000000000000000000000000", headers=reader), 404, "UNKNOWN_DUPLICATA"
    )
    assert_error(await client.get("/v1/duplicatas/nope", headers=reader), 422, "INVALID_REQUEST")
    assert_error(await client.get("/v1/convenios/NOPE/duplicatas", headers=reader), 404, "UNKNOWN_CONVENIO")

    r = await client.post(f"/v1/duplicatas/{listed['id']}/settle", json={"note": "TED 123"}, headers=office.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "PAID" and r.json()["restore"] == "DONE"
    assert await month.balance("EMPH", "ANA") == 10_000
    r2 = await client.post(f"/v1/duplicatas/{listed['id']}/settle", headers=office.headers)
    assert r2.json() == r.json()


async def test_settling_an_unknown_duplicata_says_so(month: Month) -> None:
    async with month.ledger.acquire() as conn:
        with pytest.raises(duplicatas.UnknownDuplicata):
            await duplicatas.settle(month.svc, conn, "DNOPE", now=month.now)


# -- what the review of the month found -----------------------------------------------------------
async def test_a_late_rollover_keeps_what_was_sold_after_2330(month: Month) -> None:
    """The reset is as of 23:30: a run that comes late (a retry, a scheduler that was down)
    leaves the sales made since debited."""
    month.at(local(2026, 11, 2))
    await month.convenio("LATE", 100_000, rollover={"policy": "MONTHLY", "day": 30})
    ana = await month.participant("LATE", "ANA", limit=10_000)
    month.at(local(2026, 11, 20))
    await month.sell(ana, 3_000)
    month.at(local(2026, 11, 30, 23, 32))
    after = await month.sell(ana, 2_000)
    month.at(local(2026, 11, 30, 23, 33))
    await month.sell(ana, 500)
    await month.reverse(ana, after)  # net since 23:30: 500
    month.at(local(2026, 12, 1, 8))  # the next morning
    run = await month.rollover(D(2026, 11, 30))
    assert run.counts["changed"] == 1
    assert await month.balance("LATE", "ANA") == 10_000 - 500
    await no_drift(month)


async def test_a_sale_landing_while_the_rollover_runs_is_not_lost(month: Month, monkeypatch, svc, ledger_url) -> None:
    """A pool whose balance moved after the ledger was read is left for the next round, which
    reads the ledger again: the sale stays debited."""
    import asyncio

    from ledger.writer import writer

    month.at(local(2026, 11, 2))
    await month.convenio("RACE", 100_000, rollover={"policy": "MONTHLY", "day": 30})
    ana = await month.participant("RACE", "ANA", limit=10_000)
    bia = await month.participant("RACE", "BIA", limit=10_000)
    month.at(local(2026, 11, 20))
    await month.sell(ana, 1_000)
    await month.sell(bia, 1_000)
    month.at(local(2026, 11, 30, 23, 31))

    real_apply = balance_batch.apply
    rounds = []

    async def a_sale_first(*args: Any, **kw: Any) -> Any:
        if not rounds:
            await month.sell(bia, 400)  # after the ledger was read, before the chunk runs
        rounds.append(len(args[5]))
        return await real_apply(*args, **kw)

    monkeypatch.setattr(balance_batch, "apply", a_sale_first)
    await month.store()
    stopping = asyncio.Event()
    writing = asyncio.create_task(writer.run(svc, ledger_url, "during-rollover", stopping))
    try:
        async with month.ledger.acquire() as conn:
            from ledger.month import rollover

            run = await rollover.run(svc, conn, D(2026, 11, 30), now=month.now, ledger_wait_s=10)
    finally:
        stopping.set()
        await writing
    assert rounds == [2, 1]  # BIA's balance moved: read again, reset in a second round
    assert run.counts["changed"] == 2
    assert await month.balance("RACE", "ANA") == 10_000
    assert await month.balance("RACE", "BIA") == 10_000 - 400
    await no_drift(month)


async def test_a_credit_note_under_on_settlement_is_issued_settled_and_taken_back(month: Month) -> None:
    """A reversal of a billed sale makes the next duplicata negative: nothing to collect, so it
    is issued PAID, and ON_SETTLEMENT takes the amount the reversal gave back."""
    month.at(local(2026, 11, 9))
    await month.convenio(
        "NOTE", 100_000, rollover={"policy": "ON_SETTLEMENT"}, billing={"automatic": True, "period": "DAILY"}
    )
    ana = await month.participant("NOTE", "ANA", limit=10_000)
    month.at(local(2026, 11, 10, 12))
    sale = await month.sell(ana, 1_000)
    month.at(local(2026, 11, 11, 1))
    await month.bill(D(2026, 11, 11))
    [first] = await month.duplicatas("NOTE")
    await month.settle(first["id"])
    assert await month.balance("NOTE", "ANA") == 10_000
    month.at(local(2026, 11, 11, 10))
    await month.reverse(ana, sale)
    assert await month.balance("NOTE", "ANA") == 11_000
    month.at(local(2026, 11, 12, 1))
    await month.bill(D(2026, 11, 12))
    note = next(d for d in await month.duplicatas("NOTE") if d["period_start"] == "2026-11-11")
    assert (note["amount"], note["status"], note["paid_by"], note["restore"]) == (-1_000, "PAID", "system", "DONE")
    assert await month.balance("NOTE", "ANA") == 10_000
    await no_drift(month)


async def test_a_participant_missing_from_redis_keeps_the_restoration_pending(month: Month) -> None:
    month.at(local(2026, 11, 9))
    await month.convenio(
        "GONE", 100_000, rollover={"policy": "ON_BILLING"}, billing={"automatic": True, "period": "DAILY"}
    )
    ana = await month.participant("GONE", "ANA", limit=10_000)
    month.at(local(2026, 11, 10, 12))
    await month.sell(ana, 1_000)
    await month.store()
    await month.svc.redis.delete(month.svc.keys.participant("GONE", "ANA"))  # Redis lost it
    month.at(local(2026, 11, 11, 1))
    with pytest.raises(RuntimeError, match="not in Redis"):
        await month.bill(D(2026, 11, 11))
    [dup] = await month.duplicatas("GONE")
    assert dup["restore"] == "PENDING"


# -- the convênio's own time zone ----------------------------------------------------------------
async def test_a_convenio_in_rio_branco_rolls_over_and_bills_on_its_own_days(month: Month) -> None:
    """Rio Branco is UTC−5, two hours behind São Paulo: its 23:30 is 01:30 in São Paulo, and its
    day ends at 02:00 there. Its rollover keeps the sales before its own 23:30 in the old month,
    and its daily duplicata waits for its day to end, so the sale at 23:45 there is billed."""
    acre = ZoneInfo("America/Rio_Branco")

    def there(d: int, hh: int, mm: int = 0) -> datetime.datetime:
        return datetime.datetime(2026, 11, d, hh, mm, tzinfo=acre)

    month.at(there(2, 9))
    billing = {"automatic": True, "period": "DAILY"}
    await month.convenio("EMPAC", 10_000, rollover={"policy": "MONTHLY", "day": 30}, time_zone="America/Rio_Branco")
    await month.convenio("EMPAD", 10_000, billing=billing, time_zone="America/Rio_Branco")
    ana = await month.participant("EMPAC", "ANA", limit=1_000)
    bia = await month.participant("EMPAD", "BIA", limit=1_000)

    # the rollover of the 30th: at 23:30 in São Paulo it is 21:30 in Rio Branco, too early
    month.at(there(30, 21, 30))
    with pytest.raises(RuntimeError, match="America/Rio_Branco"):
        await month.rollover(D(2026, 11, 30))
    month.at(there(30, 23, 0))
    await month.sell(ana, 300)  # the old month's, sold before 23:30 there
    month.at(there(30, 23, 40))
    await month.sell(ana, 100)  # after its 23:30: the new month's
    done = await month.rollover(D(2026, 11, 30))
    assert done.counts["convenios"] == 1 and not done.already_done
    assert await month.balance("EMPAC", "ANA") == 900

    # the daily duplicata of the 26th: at 01:00 in São Paulo on the 27th, Rio Branco is still on the 26th
    month.at(there(26, 22, 0))
    await month.sell(bia, 200)
    month.at(there(26, 23, 0))
    with pytest.raises(RuntimeError, match="America/Rio_Branco"):
        await month.bill(D(2026, 11, 27))
    month.at(there(26, 23, 45))
    await month.sell(bia, 50)
    month.at(there(27, 0, 5))
    assert (await month.bill(D(2026, 11, 27))).counts["duplicatas"] == 1
    [dup] = await month.duplicatas("EMPAD")
    assert (dup["amount"], dup["period_start"], dup["period_end"]) == (250, "2026-11-26", "2026-11-27")
