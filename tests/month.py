"""A back office's month, for the tests: convênios with their policies, sales at chosen local
times, the ledger writer run by hand, and the jobs called with the test's clock."""

from __future__ import annotations

import datetime
from typing import Any

import asyncpg
import httpx

from gateway.platform.clock import LOCAL
from gateway.platform.services import Services
from ledger.month import duplicatas, rollover
from ledger.writer import writer
from tests.checkout import BackOffice, Clock, Terminal, mint_proof


def local(y: int, m: int, d: int, hh: int = 12, mm: int = 0) -> datetime.datetime:
    return datetime.datetime(y, m, d, hh, mm, tzinfo=LOCAL)


class Month:
    def __init__(
        self,
        svc: Services,
        client: httpx.AsyncClient,
        backoffice: BackOffice,
        clock: Clock,
        ledger: asyncpg.Pool,
        ledger_url: str,
    ) -> None:
        self.svc, self.client, self.office, self.clock = svc, client, backoffice, clock
        self.ledger, self.url = ledger, ledger_url

    # -- time -------------------------------------------------------------------------------------
    def at(self, when: datetime.datetime) -> datetime.datetime:
        self.clock.now = int(when.timestamp() * 1000)
        return when.astimezone(datetime.UTC)

    @property
    def now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.clock.now / 1000, datetime.UTC)

    # -- registry ---------------------------------------------------------------------------------
    async def convenio(
        self,
        code: str,
        total_limit: int,
        *,
        shared: bool = False,
        rollover: dict[str, Any] | None = None,
        billing: dict[str, Any] | None = None,
        tolerance: int = 0,
        time_zone: str | None = None,
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {} if time_zone is None else {"time_zone": time_zone}
        if rollover is not None:
            extra["rollover"] = rollover
        if billing is not None:
            extra["billing"] = billing
        return await self.office.create_convenio(code, total_limit, tolerance=tolerance, shared=shared, **extra)

    async def participant(self, convenio: str, code: str, limit: int = 0) -> Terminal:
        await self.office.add_participant(convenio, code, limit=limit)
        creds = {
            "convenio": convenio,
            "participant": code,
            "password": None,
            "integration_key": "",
            "api_key": self.office.api_key,
        }
        return Terminal(self.client, creds)

    # -- sales ------------------------------------------------------------------------------------
    async def hold(self, t: Terminal, amount: int) -> str:
        proof = await mint_proof(self.svc, t.convenio, t.participant)
        r = await t.hold(amount, proof=proof)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    async def sell(self, t: Terminal, amount: int, coupon: str = "CUPOM") -> str:
        empenho = await self.hold(t, amount)
        r = await t.commit(empenho, coupon=coupon)
        assert r.status_code == 200, r.text
        return empenho

    async def reverse(self, t: Terminal, empenho: str) -> None:
        r = await t.cancel(empenho, reason="devolução")
        assert r.status_code == 200 and r.json()["status"] == "REVERSED", r.text

    async def return_part(self, t: Terminal, empenho: str, amount: int, **extra: Any) -> dict[str, Any]:
        """A devolução of part of a committed sale, at the test's clock."""
        r = await t.return_sale(empenho, amount, **extra)
        assert r.status_code == 201, r.text
        return r.json()

    # -- state ------------------------------------------------------------------------------------
    async def balance(self, convenio: str, participant: str | None = None) -> int:
        path = f"/v1/convenios/{convenio}" + (f"/participants/{participant}" if participant else "")
        r = await self.client.get(path, headers=self.office.headers)
        assert r.status_code == 200, r.text
        return r.json()["balance"]

    async def reserved(self, convenio: str, participant: str | None = None) -> int:
        path = f"/v1/convenios/{convenio}" + (f"/participants/{participant}" if participant else "")
        r = await self.client.get(path, headers=self.office.headers)
        return r.json()["reserved"]

    async def status(self, convenio: str) -> str:
        r = await self.client.get(f"/v1/convenios/{convenio}", headers=self.office.headers)
        return r.json()["status"]

    async def store(self) -> None:
        """The ledger writer stores what the streams hold."""
        await writer.drain(self.svc, self.url)

    # -- jobs, at the test's clock ---------------------------------------------------------------
    async def rollover(self, date: datetime.date, **kw: Any) -> Any:
        await self.store()
        async with self.ledger.acquire() as conn:
            return await rollover.run(self.svc, conn, date, now=self.now, **kw)

    async def bill(self, date: datetime.date, **kw: Any) -> Any:
        await self.store()
        async with self.ledger.acquire() as conn:
            return await duplicatas.generate(self.svc, conn, date, now=self.now, **kw)

    async def settle(self, dup_id: str, **kw: Any) -> dict[str, Any]:
        async with self.ledger.acquire() as conn:
            return await duplicatas.settle(self.svc, conn, dup_id, now=self.now, **kw)

    async def overdue(self, date: datetime.date) -> Any:
        async with self.ledger.acquire() as conn:
            return await duplicatas.overdue(self.svc, conn, date, now=self.now)

    async def duplicatas(self, convenio: str) -> list[dict[str, Any]]:
        async with self.ledger.acquire() as conn:
            rows = await duplicatas.listing(conn, convenio)
            return [await duplicatas.get(conn, r["id"], items=True) for r in rows]

    async def verify(self) -> Any:
        from ledger.ops import verify

        await self.store()
        async with self.ledger.acquire() as conn:
            return await verify.verify(self.svc, conn, wait_s=5)
