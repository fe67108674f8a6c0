"""The month sees returns: a return of a sale already billed is a negative line on the
convênio's next duplicata, under every rollover policy; the balance gets a return back at once
and the restoration that bills it takes it back, so no centavo comes back twice; a return
refunded as the customer's credit is no line; the limit windows of the sale's day and month get a
return back only while that day or month is current."""

from __future__ import annotations

import datetime

import pytest

from tests.checkout import Terminal, mint_proof
from tests.month import Month, local

D = datetime.date


@pytest.fixture
async def month(svc, client, backoffice, clock, ledger, ledger_url) -> Month:
    return Month(svc, client, backoffice, clock, ledger, ledger_url)


async def lines(month: Month, convenio: str, period_start: str) -> list[tuple[str, int]]:
    dup = next(d for d in await month.duplicatas(convenio) if d["period_start"] == period_start)
    return sorted((line["kind"], line["amount"]) for line in dup["lines"])


async def each_movement_billed_once(month: Month, convenio: str) -> None:
    """Every sale, reversal and return of the convênio is a line of exactly one duplicata."""
    async with month.ledger.acquire() as conn:
        movements = await conn.fetch(
            "SELECT protocol FROM movements WHERE convenio = $1 AND kind IN ('SALE', 'REVERSAL', 'RETURN')", convenio
        )
        items = await conn.fetch(
            "SELECT i.movement FROM duplicata_items i JOIN duplicatas d ON d.id = i.duplicata WHERE d.convenio = $1",
            convenio,
        )
    assert sorted(r["movement"] for r in items) == sorted(r["protocol"] for r in movements)


async def no_drift(month: Month) -> None:
    report = await month.verify()
    assert report.differences == [], [d.line() for d in report.differences]


# -- MONTHLY --------------------------------------------------------------------------------------
async def test_monthly_a_november_sale_returned_in_december_is_a_negative_line_of_december(month: Month) -> None:
    month.at(local(2026, 11, 2, 9))
    await month.convenio(
        "RETM", 100_000, rollover={"policy": "MONTHLY", "day": 30}, billing={"automatic": True, "period": "MONTHLY"}
    )
    ana = await month.participant("RETM", "ANA", limit=10_000)
    month.at(local(2026, 11, 10, 15))
    sale = await month.sell(ana, 5_780)
    month.at(local(2026, 11, 30, 23, 30))
    await month.rollover(D(2026, 11, 30))
    assert await month.balance("RETM", "ANA") == 10_000  # the month's consumption is back

    month.at(local(2026, 12, 1, 1))
    await month.bill(D(2026, 12, 1))
    assert await lines(month, "RETM", "2026-11-01") == [("SALE", 5_780)]

    # the item comes back in December: the customer spends it again this month; the company, who
    # paid November's bill, gets it off December's
    month.at(local(2026, 12, 10, 11))
    returned = await month.return_part(ana, sale, 1_200)
    assert returned["balance"] == 11_200
    await month.sell(ana, 3_000)
    month.at(local(2026, 12, 30, 23, 30))
    await month.rollover(D(2026, 12, 30))
    assert await month.balance("RETM", "ANA") == 10_000  # the limit, once December is over

    month.at(local(2027, 1, 1, 1))
    await month.bill(D(2027, 1, 1))
    assert await lines(month, "RETM", "2026-12-01") == [("RETURN", -1_200), ("SALE", 3_000)]
    await each_movement_billed_once(month, "RETM")
    await no_drift(month)


# -- ON_BILLING -----------------------------------------------------------------------------------
async def test_on_billing_a_return_gives_back_once_whether_it_comes_before_or_after_the_bill(month: Month) -> None:
    month.at(local(2026, 11, 9))
    await month.convenio(
        "RETB", 100_000, rollover={"policy": "ON_BILLING"}, billing={"automatic": True, "period": "DAILY"}
    )
    ana = await month.participant("RETB", "ANA", limit=10_000)

    # returned the same day, before the bill: billed net, given back once
    month.at(local(2026, 11, 10, 10))
    early = await month.sell(ana, 4_000)
    month.at(local(2026, 11, 10, 17))
    assert (await month.return_part(ana, early, 1_000))["balance"] == 7_000
    month.at(local(2026, 11, 11, 1))
    await month.bill(D(2026, 11, 11))
    assert await lines(month, "RETB", "2026-11-10") == [("RETURN", -1_000), ("SALE", 4_000)]
    assert await month.balance("RETB", "ANA") == 10_000

    # returned after the bill gave the sale back: the balance gets it now, the next bill takes it
    month.at(local(2026, 11, 11, 9))
    assert (await month.return_part(ana, early, 500))["balance"] == 10_500
    month.at(local(2026, 11, 12, 1))
    await month.bill(D(2026, 11, 12))
    assert await lines(month, "RETB", "2026-11-11") == [("RETURN", -500)]
    assert await month.balance("RETB", "ANA") == 10_000

    # what the returns left, reversed: the same rule
    month.at(local(2026, 11, 12, 9))
    await month.reverse(ana, early)
    assert await month.balance("RETB", "ANA") == 12_500
    month.at(local(2026, 11, 13, 1))
    await month.bill(D(2026, 11, 13))
    assert await lines(month, "RETB", "2026-11-12") == [("REVERSAL", -2_500)]
    assert await month.balance("RETB", "ANA") == 10_000
    await each_movement_billed_once(month, "RETB")
    await no_drift(month)


# -- ON_SETTLEMENT --------------------------------------------------------------------------------
async def test_on_settlement_a_return_of_a_paid_sale_is_a_credit_note_taken_back_on_issue(month: Month) -> None:
    month.at(local(2026, 11, 9))
    await month.convenio(
        "RETS",
        50_000,
        shared=True,
        rollover={"policy": "ON_SETTLEMENT"},
        billing={"automatic": True, "period": "DAILY"},
    )
    ana = await month.participant("RETS", "ANA")
    month.at(local(2026, 11, 10, 12))
    sale = await month.sell(ana, 5_780)
    month.at(local(2026, 11, 11, 1))
    await month.bill(D(2026, 11, 11))
    [first] = await month.duplicatas("RETS")
    assert await month.balance("RETS") == 50_000 - 5_780  # billing gives nothing back
    await month.settle(first["id"])
    assert await month.balance("RETS") == 50_000

    month.at(local(2026, 11, 11, 15))
    assert (await month.return_part(ana, sale, 1_200))["balance"] == 51_200
    month.at(local(2026, 11, 12, 1))
    await month.bill(D(2026, 11, 12))
    note = next(d for d in await month.duplicatas("RETS") if d["period_start"] == "2026-11-11")
    assert (note["amount"], note["status"], note["restore"]) == (-1_200, "PAID", "DONE")
    assert await month.balance("RETS") == 50_000
    await each_movement_billed_once(month, "RETS")
    await no_drift(month)


async def test_on_settlement_a_return_before_payment_lowers_what_the_payment_gives_back(month: Month) -> None:
    month.at(local(2026, 11, 9))
    await month.convenio(
        "RETU", 50_000, rollover={"policy": "ON_SETTLEMENT"}, billing={"automatic": True, "period": "DAILY"}
    )
    ana = await month.participant("RETU", "ANA", limit=10_000)
    month.at(local(2026, 11, 10, 12))
    sale = await month.sell(ana, 5_780)
    month.at(local(2026, 11, 11, 1))
    await month.bill(D(2026, 11, 11))
    month.at(local(2026, 11, 11, 10))
    await month.return_part(ana, sale, 1_200)  # billed, not yet paid
    assert await month.balance("RETU", "ANA") == 10_000 - 5_780 + 1_200
    month.at(local(2026, 11, 12, 1))
    await month.bill(D(2026, 11, 12))
    for dup in await month.duplicatas("RETU"):
        await month.settle(dup["id"])
    assert await month.balance("RETU", "ANA") == 10_000
    await no_drift(month)


# -- refunded as the customer's credit ------------------------------------------------------------
async def test_a_return_refunded_as_credit_is_no_line_and_moves_no_balance(month: Month) -> None:
    month.at(local(2026, 11, 9))
    await month.convenio(
        "RETC", 100_000, rollover={"policy": "ON_BILLING"}, billing={"automatic": True, "period": "DAILY"}
    )
    ana = await month.participant("RETC", "ANA", limit=10_000)
    month.at(local(2026, 11, 10, 12))
    sale = await month.sell(ana, 5_780)
    month.at(local(2026, 11, 10, 16))
    credited = await month.return_part(ana, sale, 1_200, refund="CREDIT")
    assert credited["balance"] == 10_000 - 5_780 and credited["credit"]["reference"] == f"DEV-{credited['id']}"
    month.at(local(2026, 11, 11, 1))
    await month.bill(D(2026, 11, 11))
    assert await lines(month, "RETC", "2026-11-10") == [("SALE", 5_780)]
    assert await month.balance("RETC", "ANA") == 10_000
    await each_movement_billed_once(month, "RETC")
    await no_drift(month)


# -- limit windows --------------------------------------------------------------------------------
async def test_a_return_gives_back_to_the_sale_s_day_and_month_only_while_they_are_current(month: Month) -> None:
    month.at(local(2026, 11, 2, 9))
    await month.convenio("RETW", 1_000_000)
    windows = {"daily_max": 8_000, "monthly_max": 12_000}
    await month.office.add_participant("RETW", "ANA", limit=100_000, windows=windows)
    ana = Terminal(
        month.client,
        {
            "convenio": "RETW",
            "participant": "ANA",
            "password": None,
            "integration_key": "",
            "api_key": month.office.api_key,
        },
    )

    async def allows(amount: int) -> bool:
        r = await ana.hold(amount, proof=await mint_proof(month.svc, "RETW", "ANA"))
        if r.status_code == 201:
            assert (await ana.cancel(r.json()["id"])).status_code == 200
        return r.status_code == 201

    first = await month.sell(ana, 8_000)  # the day is full
    assert not await allows(1)
    await month.return_part(ana, first, 2_000)  # same day: back to the day and the month
    assert await allows(2_000) and not await allows(2_001)

    month.at(local(2026, 11, 3, 9))
    await month.sell(ana, 4_000)  # the month: 6,000 + 4,000 of 12,000
    await month.store()
    shard = int(first.split("-", 1)[0][1:])
    await month.svc.redis.delete(month.svc.keys.empenho(shard, first), month.svc.keys.empenho_history(shard, first))
    # another day, the sale brought back from the ledger: back to the month only
    await month.return_part(ana, first, 1_000)
    assert await allows(3_000) and not await allows(3_001)  # 12,000 - 6,000 - 4,000 + 1,000
    await month.sell(ana, 3_000)
    assert not await allows(1)

    month.at(local(2026, 12, 1, 9))
    await month.return_part(ana, first, 1_000)  # November is over: no window gets it
    assert await allows(8_000) and not await allows(8_001)
