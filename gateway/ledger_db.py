"""The gateway's read-only view of the ledger in Postgres: decisions by protocol, empenhos that
have left Redis, a convênio's movements. Holds never wait on Postgres; only these reads do,
and they answer 503 LEDGER_UNAVAILABLE while it is down."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from gateway.errors import ApiError, ErrorCode
from gateway.schemas import DecisionView, EmpenhoView, HistoryEntry, Movement, MovementList, Vehicle

_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError, TimeoutError)


def _ts(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LedgerDB:
    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self.url, min_size=0, max_size=4, timeout=self.timeout_s, command_timeout=self.timeout_s
                    )
        return self._pool

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            pool = await asyncio.wait_for(self._get_pool(), self.timeout_s)
            return await pool.fetch(sql, *args, timeout=self.timeout_s)
        except asyncpg.DataError as exc:  # a value Postgres cannot take (checked at the edge first)
            raise ApiError(ErrorCode.INVALID_REQUEST, f"A value is out of range: {type(exc).__name__}.") from None
        except _DOWN:
            raise ApiError(ErrorCode.LEDGER_UNAVAILABLE) from None
        except asyncpg.UndefinedTableError:
            msg = "The ledger database is not migrated (run `convenio migrate`)."
            raise ApiError(ErrorCode.LEDGER_UNAVAILABLE, msg) from None
        except asyncpg.InvalidCatalogNameError:
            raise ApiError(ErrorCode.LEDGER_UNAVAILABLE, "The ledger database does not exist.") from None

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection for a back-office write (settlement); Postgres down -> 503."""
        try:
            pool = await asyncio.wait_for(self._get_pool(), self.timeout_s)
            async with pool.acquire(timeout=self.timeout_s) as conn:
                yield conn
        except _DOWN:
            raise ApiError(ErrorCode.LEDGER_UNAVAILABLE) from None
        except asyncpg.UndefinedTableError:
            msg = "The ledger database is not migrated (run `convenio migrate`)."
            raise ApiError(ErrorCode.LEDGER_UNAVAILABLE, msg) from None

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 2)
            except Exception:
                pool.terminate()

    # -- reads ------------------------------------------------------------------------------
    async def decision(self, protocol: str) -> DecisionView:
        rows = await self.fetch("SELECT * FROM decisions WHERE protocol = $1", protocol)
        if not rows:
            raise ApiError(ErrorCode.UNKNOWN_PROTOCOL)
        r = rows[0]
        view = DecisionView(
            protocol=r["protocol"],
            at=_ts(r["at"]),
            kind=r["kind"],
            outcome=r["outcome"],
            request=json.loads(r["request"]),
            answer=json.loads(r["answer"]),
        )
        for column, attr in (
            ("http_status", "http_status"),
            ("error", "error"),
            ("convenio", "convenio"),
            ("participant", "participant"),
            ("empenho_id", "empenho"),
        ):
            if r[column] is not None:
                setattr(view, attr, r[column])
        return view

    async def empenho(self, empenho_id: str) -> EmpenhoView:
        rows = await self.fetch("SELECT * FROM empenhos WHERE id = $1", empenho_id)
        if not rows:
            raise ApiError(ErrorCode.UNKNOWN_EMPENHO)
        e = rows[0]
        history = await self.fetch(
            "SELECT status, at, protocol, amount FROM empenho_history WHERE empenho_id = $1 ORDER BY seq",
            empenho_id,
        )
        view = EmpenhoView(
            id=e["id"],
            convenio=e["convenio"],
            participant=e["participant"],
            status=e["status"],
            amount=e["amount"],
            terminal=e["terminal"],
            store=e["store"],
            sale=e["sale"],
            created_at=_ts(e["created_at"]),
            expires_at=_ts(e["expires_at"]),
            protocol=e["protocol"],
            history=[HistoryEntry(h["status"], _ts(h["at"]), h["protocol"], h["amount"]) for h in history],
        )
        if e["committed_amount"] is not None:
            view.committed_amount = e["committed_amount"]
            view.coupon = e["coupon"]
        if e["plate"]:
            view.vehicle = Vehicle(plate=e["plate"], odometer_km=e["odometer_km"])
        if e["cancel_reason"]:
            view.cancel_reason = e["cancel_reason"]
        if e["order_ref"]:
            view.order = e["order_ref"]
        return view

    async def movements(
        self,
        convenio: str,
        participant: str | None,
        start: datetime.datetime | None,
        end: datetime.datetime | None,
        after: int,
        limit: int,
    ) -> MovementList:
        known = await self.fetch("SELECT 1 FROM convenios WHERE code = $1", convenio)
        if not known:
            raise ApiError(ErrorCode.UNKNOWN_CONVENIO)
        rows = await self.fetch(
            """SELECT * FROM movements
               WHERE convenio = $1 AND ($2::text IS NULL OR participant = $2)
                 AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4)
                 AND seq > $5
               ORDER BY seq LIMIT $6""",
            convenio,
            participant,
            start,
            end,
            after,
            limit + 1,
        )
        page = [_movement(r) for r in rows[:limit]]
        result = MovementList(movements=page)
        if len(rows) > limit:
            result.next_after = page[-1].seq
        return result


def _movement(r: asyncpg.Record) -> Movement:
    m = Movement(
        seq=r["seq"],
        protocol=r["protocol"],
        at=_ts(r["at"]),
        kind=r["kind"],
        amount=r["amount"],
        balance_after=r["balance_after"],
        pool=r["pool"],
    )
    for column, attr in (
        ("participant", "participant"),
        ("empenho_id", "empenho"),
        ("terminal", "terminal"),
        ("store", "store"),
        ("sale", "sale"),
        ("coupon", "coupon"),
        ("batch_key", "batch"),
    ):
        if r[column] is not None:
            setattr(m, attr, r[column])
    return m
