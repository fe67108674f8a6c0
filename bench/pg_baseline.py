"""Baseline (iii): the hold and commit done the way an ERP's own module does it, in one Postgres
transaction with `SELECT … FOR UPDATE` on the balance row, then the sale row written:

    BEGIN; SELECT balance, reserved FROM account WHERE id = $1 FOR UPDATE;
    UPDATE account SET balance = balance - $2 WHERE id = $1;  -- when balance - reserved ≥ amount
    INSERT INTO sale (account, amount, terminal, coupon) VALUES (...); COMMIT;

`hot`: every transaction on one account (a shared pool); `spread`: accounts drawn from 10 000.
Postgres is durable (fsync, synchronous_commit on) and not pinned: it has every core.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import asyncpg

from bench.http_load import Result

SCHEMA = """
CREATE TABLE account (id int PRIMARY KEY, balance bigint NOT NULL, reserved bigint NOT NULL DEFAULT 0);
CREATE TABLE sale (
    id bigserial PRIMARY KEY, account int NOT NULL REFERENCES account, amount bigint NOT NULL,
    terminal text NOT NULL, coupon text NOT NULL, at timestamptz NOT NULL DEFAULT now()
);
"""
ACCOUNTS = 10_000


async def prepare(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP TABLE IF EXISTS sale; DROP TABLE IF EXISTS account;")
        await conn.execute(SCHEMA)
        await conn.copy_records_to_table(
            "account", records=[(i, 10**12, 0) for i in range(1, ACCOUNTS + 1)], columns=["id", "balance", "reserved"]
        )
        await conn.execute("VACUUM ANALYZE account")
    finally:
        await conn.close()


async def _sale(conn: asyncpg.Connection, account: int, amount: int, n: int) -> bool:
    async with conn.transaction():
        row = await conn.fetchrow("SELECT balance, reserved FROM account WHERE id = $1 FOR UPDATE", account)
        if row["balance"] - row["reserved"] < amount:
            return False
        await conn.execute("UPDATE account SET balance = balance - $2 WHERE id = $1", account, amount)
        await conn.execute(
            "INSERT INTO sale (account, amount, terminal, coupon) VALUES ($1, $2, $3, $4)",
            account,
            amount,
            "PDV01",
            f"C{n}",
        )
    return True


async def run(url: str, hot: bool, total: int, concurrency: int, deadline_s: float, seed: int = 1) -> Result:
    """Closed loop: `concurrency` connections each run sales until `total` or the deadline."""
    rng = random.Random(seed)
    pool = await asyncpg.create_pool(url, min_size=concurrency, max_size=concurrency)
    counter = iter(range(total))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop_at = time.perf_counter() + deadline_s

    async def terminal() -> None:
        async with pool.acquire() as conn:
            for n in counter:
                if time.perf_counter() > stop_at:
                    return
                account = 1 if hot else rng.randrange(1, ACCOUNTS + 1)
                started = time.perf_counter()
                ok = await _sale(conn, account, 100, n)
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[200 if ok else 422] = statuses.get(200 if ok else 422, 0) + 1

    try:
        started = time.perf_counter()
        await asyncio.gather(*(terminal() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    finally:
        await pool.close()
    return Result(len(latencies), seconds, latencies, statuses)


async def settings(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'max_connections')"
        )
        return {r["name"]: r["setting"] for r in rows}
    finally:
        await conn.close()
