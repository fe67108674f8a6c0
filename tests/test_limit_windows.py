"""Limit windows: besides the balance, a hold must fit in the participant's and the
convênio's caps per order, per local day and per local month; each decline says which window
and how much it still allows; what a hold no longer takes (cancel, expiry, a partial commit,
a reversal) goes back to its windows."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.holds import sweeper
from tests.checkout import Terminal, assert_error, mint_proof
from tests.month import Month, local


@pytest.fixture
async def month(svc, client, backoffice, clock, ledger, ledger_url) -> Month:
    return Month(svc, client, backoffice, clock, ledger, ledger_url)


async def try_hold(month: Month, t: Terminal, amount: int) -> httpx.Response:
    return await t.hold(amount, proof=await mint_proof(month.svc, t.convenio, t.participant))


def declined(r: httpx.Response, code: str, scope: str, remaining: int) -> dict[str, Any]:
    body = assert_error(r, 422, code)
    assert (body["scope"], body["remaining"]) == (scope, remaining), body
    return body


async def test_a_participant_s_order_day_and_month_windows_each_decline_with_what_is_left(month: Month) -> None:
    month.at(local(2026, 11, 2, 9))
    await month.convenio("JAN", 1_000_000)
    windows = {"order_max": 5_000, "daily_max": 8_000, "monthly_max": 12_000}
    await month.office.add_participant("JAN", "ANA", limit=100_000, windows=windows)
    ana = Terminal(month.client, {**_creds(month), "convenio": "JAN", "participant": "ANA"})

    declined(await try_hold(month, ana, 5_001), "ORDER_LIMIT_EXCEEDED", "participant", 5_000)
    first = await month.sell(ana, 5_000)  # exactly the order cap
    declined(await try_hold(month, ana, 3_001), "DAILY_LIMIT_EXCEEDED", "participant", 3_000)
    pending = await month.hold(ana, 3_000)  # the day is full now
    declined(await try_hold(month, ana, 1), "DAILY_LIMIT_EXCEEDED", "participant", 0)

    await ana.cancel(pending)  # a cancelled hold gives its amount back to the day
    partial = await month.hold(ana, 3_000)
    r = await ana.commit(partial, amount=1_000)  # and a partial commit the rest
    assert r.status_code == 200
    declined(await try_hold(month, ana, 2_001), "DAILY_LIMIT_EXCEEDED", "participant", 2_000)

    # a new local day starts from zero; the month remembers 6,000
    month.at(local(2026, 11, 3, 0, 1))
    await month.sell(ana, 5_000)
    declined(await try_hold(month, ana, 1_001), "MONTHLY_LIMIT_EXCEEDED", "participant", 1_000)
    await month.reverse(ana, first)  # a reversal in the same month gives back to the month only
    await month.sell(ana, 3_000)  # today's window: 8,000 - 5,000; the month's: 12,000 - 6,000 - 5,000 + 5,000
    declined(await try_hold(month, ana, 1), "DAILY_LIMIT_EXCEEDED", "participant", 0)

    # December: both windows start over
    month.at(local(2026, 12, 1, 8))
    await month.sell(ana, 5_000)
    view = (await month.client.get("/v1/convenios/JAN/participants/ANA", headers=month.office.headers)).json()
    assert view["windows"] == windows


def _creds(month: Month) -> dict[str, Any]:
    return {"password": None, "integration_key": "", "api_key": month.office.api_key}


async def test_a_convenio_s_day_window_caps_all_its_participants_together(month: Month) -> None:
    month.at(local(2026, 11, 2, 9))
    await month.convenio("FEV", 1_000_000)
    r = await month.office.update_convenio("FEV", windows={"daily_max": 10_000}, reason="política de crédito")
    assert r.status_code == 200 and r.json()["windows"] == {"order_max": None, "daily_max": 10_000, "monthly_max": None}
    ana = await month.participant("FEV", "ANA", limit=50_000)
    bia = await month.participant("FEV", "BIA", limit=50_000)
    await month.sell(ana, 6_000)
    r = await try_hold(month, bia, 5_000)
    body = declined(r, "DAILY_LIMIT_EXCEEDED", "convenio", 4_000)
    assert body["available"] == 50_000  # the balance would allow it: the window does not
    await month.sell(bia, 4_000)


async def test_an_expired_hold_gives_its_amount_back_to_the_window(month: Month, svc) -> None:
    month.at(local(2026, 11, 2, 9))
    await month.convenio("MAR", 1_000_000)
    await month.office.add_participant("MAR", "ANA", limit=100_000, windows={"daily_max": 1_000})
    ana = Terminal(month.client, {**_creds(month), "convenio": "MAR", "participant": "ANA"})
    await month.hold(ana, 1_000)
    declined(await try_hold(month, ana, 1), "DAILY_LIMIT_EXCEEDED", "participant", 0)
    month.clock.advance(svc.settings.hold_ttl_s + 1)
    await sweeper.sweep_once(svc)
    await month.hold(ana, 1_000)


async def test_without_caps_nothing_is_counted_and_a_decline_is_kept_as_answered(month: Month) -> None:
    month.at(local(2026, 11, 2, 9))
    await month.convenio("ABR", 1_000_000)
    ana = await month.participant("ABR", "ANA", limit=10_000)
    await month.sell(ana, 9_000)
    raw = await month.svc.redis.hgetall(month.svc.keys.participant("ABR", "ANA"))
    assert b"wds" not in raw  # no cap: holds leave no counters behind
    r = await month.office.update_participant("ABR", "ANA", windows={"order_max": 100})
    assert r.status_code == 200
    r = await try_hold(month, ana, 101)
    body = declined(r, "ORDER_LIMIT_EXCEEDED", "participant", 100)
    await month.store()
    d = (await month.client.get(f"/v1/protocols/{body['protocol']}", headers=month.office.headers)).json()
    assert d["outcome"] == "DECLINED" and d["answer"]["error"]["remaining"] == 100


async def test_a_request_stamped_before_midnight_arriving_late_counts_in_the_later_day(month: Month) -> None:
    """Two gateways a second apart around midnight: the windows never move backwards, so the
    late request of the 2nd counts in the 3rd and the 3rd's cap still holds."""
    month.at(local(2026, 11, 2, 9))
    await month.convenio("MAI", 1_000_000)
    await month.office.add_participant("MAI", "ANA", limit=100_000, windows={"daily_max": 10_000})
    ana = Terminal(month.client, {**_creds(month), "convenio": "MAI", "participant": "ANA"})
    month.at(local(2026, 11, 3, 0, 0))
    month.clock.now += 1_000  # 00:00:01 on the 3rd
    await month.hold(ana, 6_000)
    month.clock.now -= 2_000  # 23:59:59 on the 2nd, arriving late
    late = await month.hold(ana, 100)
    month.clock.now += 3_000
    declined(await try_hold(month, ana, 9_000), "DAILY_LIMIT_EXCEEDED", "participant", 3_900)
    await ana.cancel(late)  # and cancelling it gives back to the day it was counted in
    declined(await try_hold(month, ana, 4_001), "DAILY_LIMIT_EXCEEDED", "participant", 4_000)
