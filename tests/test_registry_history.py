"""The registry's change history ("Histórico"): every change of a limit or a status,
made directly by an operator (a PATCH with its "reason") or by the system (overdue blocking),
with who, when, before, after and why; and the credit block ("Bloqueado por crédito"), which
declines sales like any other block."""

from __future__ import annotations

import datetime
import json
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.auth import apikeys
from gateway.platform.clock import rfc3339
from gateway.platform.services import Services
from ledger.writer import writer
from ledger.writer.fold import Event
from ledger.writer.history import HistoryFold
from tests.checkout import BackOffice, Clock, Terminal, assert_error
from tests.month import Month, local


def ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()


async def history(bo: BackOffice, convenio: str, participant: str | None = None, **params: Any) -> dict[str, Any]:
    path = f"/v1/convenios/{convenio}" + (f"/participants/{participant}" if participant else "") + "/history"
    return ok(await bo.client.get(path, params=params, headers=bo.headers))


def changes(page: dict[str, Any]) -> list[tuple]:
    return [(h["kind"], h["at"], h["by"], h["before"], h["after"], h["reason"]) for h in page["history"]]


async def test_a_participant_blocked_for_credit_cannot_buy_and_the_history_says_who_and_why(
    svc: Services, clock: Clock, seed: Terminal, backoffice: BackOffice, ledger_url: str
) -> None:
    """CLI001 of EMP001 (R$ 100,00): the analyst raises the limit to R$ 150,00, then blocks the
    participant for credit ("Bloqueado por crédito"): the terminal sees the status and the
    R$ 5,78 sale is declined; unblocked, it goes through. Each change is in the history."""
    admin = f"apikey:{apikeys.key_id(backoffice.api_key)}"
    clock.advance(60)
    raised = ok(await backoffice.update_participant("EMP001", "CLI001", limit=15_000, reason="aumento salarial"))
    raised_at = rfc3339(clock.now)
    assert (raised["limit"], raised["balance"]) == (15_000, 15_000)

    clock.advance(60)
    blocked = ok(
        await backoffice.update_participant("EMP001", "CLI001", status="BLOCKED_CREDIT", reason="cheque devolvido")
    )
    blocked_at = rfc3339(clock.now)
    assert blocked["status"] == "BLOCKED_CREDIT"
    assert ok(await seed.limit())["status"] == "BLOCKED_CREDIT"
    err = assert_error(await seed.hold(578), 422, "PARTICIPANT_BLOCKED")
    assert err["available"] == 15_000 + 1_000
    assert await seed.available() == 16_000  # nothing was held

    clock.advance(60)
    ok(await backoffice.update_participant("EMP001", "CLI001", status="ACTIVE", reason="cheque compensado"))
    unblocked_at = rfc3339(clock.now)
    ok(await seed.hold(578), 201)

    clock.advance(60)
    ok(await backoffice.update_participant("EMP001", "CLI001", name="CLIENTE RENOMEADO"))  # neither limit nor status

    await writer.drain(svc, ledger_url)
    page = await history(backoffice, "EMP001", "CLI001")
    newest = changes(page)[:3]
    assert newest == [
        ("STATUS", unblocked_at, admin, "BLOCKED_CREDIT", "ACTIVE", "cheque compensado"),
        ("STATUS", blocked_at, admin, "ACTIVE", "BLOCKED_CREDIT", "cheque devolvido"),
        ("LIMIT", raised_at, admin, 10_000, 15_000, "aumento salarial"),
    ]
    # and the demo's creation before them: the grant of R$ 100,00, ACTIVE
    assert [(k, before, after) for k, _, _, before, after, _ in changes(page)[3:]] == [
        ("STATUS", None, "ACTIVE"),
        ("LIMIT", None, 10_000),
    ]
    assert "next_after" not in page


async def test_a_convenio_blocked_for_credit_declines_every_participant(
    svc: Services, clock: Clock, seed: Terminal, backoffice: BackOffice, ledger_url: str
) -> None:
    """EMP001's total goes from R$ 10.000,00 to R$ 12.000,00, then the company is blocked for
    credit: the sale is declined as CONVENIO_BLOCKED. The convênio's history shows its own
    changes (and not its participants')."""
    admin = f"apikey:{apikeys.key_id(backoffice.api_key)}"
    clock.advance(60)
    ok(await backoffice.update_convenio("EMP001", total_limit=1_200_000, reason="contrato renovado"))
    raised_at = rfc3339(clock.now)
    clock.advance(60)
    ok(await backoffice.update_convenio("EMP001", status="BLOCKED_CREDIT", reason="empresa em recuperação judicial"))
    blocked_at = rfc3339(clock.now)
    assert ok(await seed.limit())["status"] == "BLOCKED_CREDIT"
    assert_error(await seed.hold(578), 422, "CONVENIO_BLOCKED")
    ok(await backoffice.update_participant("EMP001", "CLI001", limit=5_000, reason="redução"))

    await writer.drain(svc, ledger_url)
    page = await history(backoffice, "EMP001")
    assert changes(page)[:2] == [
        ("STATUS", blocked_at, admin, "ACTIVE", "BLOCKED_CREDIT", "empresa em recuperação judicial"),
        ("LIMIT", raised_at, admin, 1_000_000, 1_200_000, "contrato renovado"),
    ]
    assert [(k, before, after) for k, _, _, before, after, _ in changes(page)[2:]] == [
        ("STATUS", None, "ACTIVE"),
        ("LIMIT", None, 1_000_000),
    ]


@pytest.fixture
async def month(svc, client, backoffice, clock, ledger, ledger_url) -> Month:
    return Month(svc, client, backoffice, clock, ledger, ledger_url)


async def test_the_system_blocks_for_overdue_and_unblocks_on_settlement_in_the_history(month: Month) -> None:
    """LATE's duplicata of 11/11 is still open two days past due: the nightly check blocks the
    convênio (BLOCKED_OVERDUE, by "system"); its settlement lifts the block."""
    month.at(local(2026, 11, 9))
    billing = {"automatic": True, "period": "DAILY", "due_days": 0, "block_after_days": 2}
    await month.convenio("LATE", 100_000, billing=billing)
    ana = await month.participant("LATE", "ANA", limit=10_000)
    month.at(local(2026, 11, 10, 12))
    await month.sell(ana, 900)
    month.at(local(2026, 11, 11, 1))
    await month.bill(datetime.date(2026, 11, 11))
    [dup] = await month.duplicatas("LATE")

    month.at(local(2026, 11, 14, 1))
    blocked_at = rfc3339(month.clock.now)
    await month.overdue(datetime.date(2026, 11, 14))
    month.at(local(2026, 11, 15, 10))
    settled_at = rfc3339(month.clock.now)
    await month.settle(dup["id"])
    await month.store()

    page = await history(month.office, "LATE")
    assert changes(page)[:2] == [
        ("STATUS", settled_at, "system", "BLOCKED_OVERDUE", "ACTIVE", "no duplicata overdue"),
        ("STATUS", blocked_at, "system", "ACTIVE", "BLOCKED_OVERDUE", "duplicata overdue"),
    ]


async def test_the_history_is_newest_first_a_page_at_a_time(
    svc: Services, clock: Clock, backoffice: BackOffice, ledger_url: str
) -> None:
    """Five changes of BIA's limit, read two at a time with next_after."""
    await backoffice.create_convenio("EMP090", 1_000_000)
    await backoffice.add_participant("EMP090", "BIA", limit=1_000)
    for limit in (2_000, 3_000, 4_000, 5_000):
        clock.advance(60)
        ok(await backoffice.update_participant("EMP090", "BIA", limit=limit, reason=f"para {limit}"))
    await writer.drain(svc, ledger_url)

    afters: list[tuple] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 2} if after is None else {"limit": 2, "after": after}
        page = await history(backoffice, "EMP090", "BIA", **params)
        afters += [(h["kind"], h["after"]) for h in page["history"]]
        after = page.get("next_after")
        if after is None:
            break
    newest_first = [5_000, 4_000, 3_000, 2_000]
    assert afters == [("LIMIT", a) for a in newest_first] + [("STATUS", "ACTIVE"), ("LIMIT", 1_000)]
    r = await backoffice.client.get(
        "/v1/convenios/EMP090/participants/BIA/history", params={"after": "x"}, headers=backoffice.headers
    )
    assert_error(r, 422, "INVALID_REQUEST", "after")


async def test_a_redelivered_event_writes_its_history_once(
    svc: Services, backoffice: BackOffice, ledger_url: str, ledger: asyncpg.Pool
) -> None:
    """The writer may see an event again (a crash before its acknowledgement): the row's
    protocol (the event's plus the field) is unique, so the history does not double."""
    await backoffice.create_convenio("EMP091", 1_000_000)
    await backoffice.add_participant("EMP091", "CAIO", limit=1_000)
    ok(await backoffice.update_participant("EMP091", "CAIO", limit=2_000, status="BLOCKED", reason="revisão"))
    await writer.drain(svc, ledger_url)
    before = await history(backoffice, "EMP091", "CAIO")
    assert len(before["history"]) == 4

    async with ledger.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM journal WHERE type LIKE 'participant.%' ORDER BY stream_id")
        fold = HistoryFold()
        for r in rows:
            fold.add(Event(r["protocol"], r["shard"], r["stream_id"], r["type"], r["at"], json.loads(r["data"])))
        assert len(fold.rows) == 4
        async with conn.transaction():
            await fold.write(conn)
    assert await history(backoffice, "EMP091", "CAIO") == before


async def test_the_history_of_an_unknown_code_is_404(seed: Terminal, backoffice: BackOffice) -> None:
    r = await backoffice.client.get("/v1/convenios/EMP999/history", headers=backoffice.headers)
    assert_error(r, 404, "UNKNOWN_CONVENIO")
    r = await backoffice.client.get("/v1/convenios/EMP001/participants/CLI999/history", headers=backoffice.headers)
    assert_error(r, 404, "UNKNOWN_PARTICIPANT")
    terminal = {"Authorization": f"Bearer {await backoffice.key(3183)}"}
    r = await backoffice.client.get("/v1/convenios/EMP001/history", headers=terminal)
    assert_error(r, 403, "FORBIDDEN")
