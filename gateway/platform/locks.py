"""Every Postgres advisory lock the product takes, in one table, so no two uses share an id.

`Lock.X` alone locks one thing (`pg_advisory_lock(id)`); a class locks one thing per name
(`pg_advisory_lock(id, hashtext(name))`: a stream, a job run, a request)."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import AsyncIterator
from typing import Any


class Lock(enum.IntEnum):
    MIGRATE = 7_321_001  # one `convenio migrate` at a time
    LEDGER_STREAM = 7_321_002  # class: one ledger writer per event stream
    RECONCILE = 7_321_004  # closing-file imports, reconciliation runs and undos, one at a time
    JOB_RUN = 0x6A6F6273  # class 'jobs': one run of a batch job and key at a time
    ROLLOVER = 0x726F6C6C  # class 'roll': one rollover of a convênio and date at a time
    RESTORATION = 0x64757073  # class 'dups': one balance restoration of a duplicata at a time
    LIMIT_REQUEST = 0x6C726571  # class 'lreq': one decision of a limit request at a time


assert len(set(Lock)) == len(Lock.__members__), "two advisory locks share an id"


async def acquire(conn: Any, lock: Lock, name: str | None = None) -> None:
    """Wait for the lock (on this session; released by `release` or when the connection ends)."""
    if name is None:
        await conn.execute("SELECT pg_advisory_lock($1)", int(lock))
    else:
        await conn.execute("SELECT pg_advisory_lock($1, hashtext($2))", int(lock), name)


async def try_acquire(conn: Any, lock: Lock, name: str | None = None) -> bool:
    if name is None:
        return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", int(lock)))
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", int(lock), name))


async def release(conn: Any, lock: Lock, name: str | None = None) -> None:
    if name is None:
        await conn.execute("SELECT pg_advisory_unlock($1)", int(lock))
    else:
        await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", int(lock), name)


async def for_transaction(conn: Any, lock: Lock, name: str | None = None) -> None:
    """Wait for the lock until the current transaction ends."""
    if name is None:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", int(lock))
    else:
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", int(lock), name)


@contextlib.asynccontextmanager
async def held(conn: Any, lock: Lock, name: str | None = None, *, busy: Exception | None = None) -> AsyncIterator[None]:
    """The lock around a block: waited for, or with `busy` raised at once when someone holds it."""
    if busy is None:
        await acquire(conn, lock, name)
    elif not await try_acquire(conn, lock, name):
        raise busy
    try:
        yield
    finally:
        await release(conn, lock, name)
