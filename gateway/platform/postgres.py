"""The gateway's connections to the ledger in Postgres, for the reads that outlive Redis (a
decision by its protocol, an empenho that has left Redis, movements, duplicatas) and the few
back-office writes kept there. Holds never wait on Postgres; only these calls do, and they
answer 503 LEDGER_UNAVAILABLE while it is down."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from gateway.platform.errors import ApiError, ErrorCode

#: what a lost or unreachable Postgres raises
POSTGRES_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError)
_DOWN = (*POSTGRES_DOWN, TimeoutError)


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
