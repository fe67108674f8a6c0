"""Balance changes of the month's batches: a rollover (RESET to the limit) or a restoration of
billed amounts (RESTORE), applied through gateway/lua/balance_batch.lua in chunks, the same
way a sale changes a balance.

A batch that dies half-way is run again: its earlier chunks' events are in the journal (the
caller made sure the writer stored everything first), so `already_done` finds the pools they
changed and the re-run skips them. Nothing is applied twice and nothing is kept in Redis for it.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from gateway.core import Gateway

CHUNK = 250  # participants per script call: a few ms of Redis, so holds barely notice

Progress = Callable[[int], None]


@dataclass
class Applied:
    changed: int = 0
    skipped: int = 0  # done by an earlier attempt
    missing: int = 0  # in Postgres but not in Redis (removed since)


async def already_done(
    conn: asyncpg.Connection, convenio: str, mode: str, key: str, since: datetime.datetime
) -> set[str]:
    """Pools ('' for the shared pool) an earlier attempt of this batch changed."""
    etype = "balance.rolled_over" if mode == "RESET" else "balance.restored"
    rows = await conn.fetch(
        """SELECT DISTINCT item->>0 AS code
           FROM journal, jsonb_array_elements(data->'items') AS item
           WHERE type = $1 AND at >= $2 AND data->>'convenio' = $3 AND data->>'key' = $4""",
        etype,
        since,
        convenio,
        key,
    )
    return {r["code"] for r in rows}


async def apply(
    gw: Gateway,
    convenio: str,
    mode: str,
    key: str,
    policy: str,
    pools: Sequence[tuple[str, int | None]],
    *,
    shared: bool,
    skip: set[str] | frozenset[str] = frozenset(),
    progress: Progress | None = None,
    chunk: int | None = None,
) -> Applied:
    """Apply mode to pools: (participant code, amount to give back or None for RESET); for the
    shared pool one entry with code ''."""
    chunk = chunk or CHUNK
    k = gw.keys
    shard = k.shard_of(convenio)
    head = [k.convenio(convenio), k.events(shard)]
    out = Applied()
    todo = [(code, amount) for code, amount in pools if code not in skip]
    out.skipped = len(pools) - len(todo)
    if progress and out.skipped:
        progress(out.skipped)
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        keys = list(head) if shared else [*head, *(k.participant(convenio, code) for code, _ in part)]
        args: list[str | int] = [gw.now_ms(), gw.protocol(), convenio, mode, key, policy]
        for code, amount in part:
            args += [code, "" if amount is None else amount]
        res = await gw.run("balance_batch", keys, args)
        if not res["ok"]:
            raise RuntimeError(f"{mode} of {convenio} refused: {res['code']}")
        out.changed += res["r"]["changed"]
        out.missing += len(res["r"]["missing"] or [])
        if progress:
            progress(len(part))
    return out
