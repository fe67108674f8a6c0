"""Duplicatas: the collection bills to the companies, their settlement (quitação),
the balance restorations they trigger (ON_BILLING, ON_SETTLEMENT) and overdue blocking.

Generation bills, per convênio, the sale, reversal and return movements of the period that no
duplicata holds yet: DAILY bills the previous local day, MONTHLY the closed month; one
duplicata for the convênio, or one per participant when billing is in the participant's name.
A movement is billed once (it is duplicata_items' key) and each convênio is billed in one
transaction, so a run killed half-way leaves whole duplicatas, and the re-run bills the rest.
A reversal or a return of a sale already billed falls in a later period: a negative item of that
one. With ON_BILLING or ON_SETTLEMENT, a return gives its amount back to the pool at once (as a
reversal does) and the restoration of the duplicata that bills it takes it back (its negative
line counts in the sum given back): each centavo comes back once. A return refunded as the
customer's credit moves no balance and is no line: the company pays for the sale, the customer
holds the credit.

The query reads movements by (convênio, at): its time grows with the period billed, not with
the journal.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from gateway.audit import log as audit
from gateway.platform import locks
from gateway.platform.clock import iso, iso_or_none, local_start, local_today
from gateway.platform.ids import new_duplicata_id
from gateway.platform.locks import Lock
from gateway.platform.progress import Progress
from gateway.platform.services import Services
from ledger.month import balance_batch, jobs
from ledger.month.calendar import month_start, previous_month_start


class UnknownDuplicata(LookupError):
    pass


class UnknownConvenio(LookupError):
    pass


class TooEarly(ValueError):
    """A period asked for before it has closed."""


class PeriodOpen(TooEarly):
    """One convênio's period has not closed yet in its own time zone: the run fails for it, and
    the scheduler's retry bills it once it has."""


@dataclass(frozen=True)
class Policy:
    """What a convênio's record says about billing and rollover."""

    code: str
    shared: bool
    rollover: str  # MONTHLY | ON_BILLING | ON_SETTLEMENT
    automatic: bool
    period: str  # DAILY | MONTHLY
    in_participant_name: bool
    payment_method: str
    due_days: int
    block_after_days: int
    time_zone: str = "America/Sao_Paulo"  # its periods are local days of this zone

    @classmethod
    def of(cls, code: str, shared: bool, record: str | dict[str, Any]) -> Policy:
        r = json.loads(record) if isinstance(record, str) else record
        return cls(
            code=code,
            shared=shared,
            rollover=r.get("rollover_policy") or "MONTHLY",
            automatic=r.get("billing_automatic") == "1",
            period=r.get("billing_period") or "MONTHLY",
            in_participant_name=r.get("billing_in_participant_name") == "1",
            payment_method=r.get("payment_method") or "BOLETO",
            due_days=int(r.get("billing_due_days") or 10),
            block_after_days=int(r.get("billing_block_after_days") or 5),
            time_zone=r.get("time_zone") or "America/Sao_Paulo",
        )


async def policies(conn: asyncpg.Connection, convenio: str | None = None) -> list[Policy]:
    rows = await conn.fetch(
        "SELECT code, shared, record FROM convenios WHERE $1::text IS NULL OR code = $1 ORDER BY code", convenio
    )
    return [Policy.of(r["code"], r["shared"], r["record"]) for r in rows]


def period_of(policy: Policy, date: datetime.date, *, nightly: bool) -> tuple[datetime.date, datetime.date] | None:
    """The period a run on local date bills: DAILY the day before, MONTHLY the closed month
    (the nightly run bills it on the 1st only; a run by hand bills the last closed month)."""
    if policy.period == "DAILY":
        return date - datetime.timedelta(days=1), date
    if nightly and date.day != 1:
        return None
    return previous_month_start(date), month_start(date)


# -- generation ---------------------------------------------------------------------------------
_GROUPS = """
SELECT CASE WHEN $4 THEN m.participant END AS who, sum(-m.amount)::bigint AS amount, count(*)::int AS n
FROM movements m
WHERE m.convenio = $1 AND m.at >= $2 AND m.at < $3 AND m.kind IN ('SALE', 'REVERSAL', 'RETURN')
  AND NOT EXISTS (SELECT 1 FROM duplicata_items i WHERE i.movement = m.protocol)
GROUP BY 1
"""

_ITEMS = """
INSERT INTO duplicata_items (movement, duplicata, participant, pool, empenho_id, kind, amount, at)
SELECT m.protocol, d.id, m.participant, m.pool, m.empenho_id, m.kind, -m.amount, m.at
FROM movements m
JOIN unnest($5::text[], $6::text[]) AS d (id, who) ON d.who IS NOT DISTINCT FROM (CASE WHEN $4 THEN m.participant END)
WHERE m.convenio = $1 AND m.at >= $2 AND m.at < $3 AND m.kind IN ('SALE', 'REVERSAL', 'RETURN')
  AND NOT EXISTS (SELECT 1 FROM duplicata_items i WHERE i.movement = m.protocol)
"""

_INSERT = """
INSERT INTO duplicatas (id, convenio, participant, period, period_start, period_end, amount, items,
                        payment_method, issued_at, due_date, status, restore)
SELECT d.id, $1, d.who, $2, $3, $4, d.amount, d.n, $5, $6, $7, 'OPEN', $8
FROM unnest($9::text[], $10::text[], $11::bigint[], $12::int[]) AS d (id, who, amount, n)
"""


async def bill(
    conn: asyncpg.Connection,
    policy: Policy,
    start: datetime.date,
    end: datetime.date,
    issued: datetime.datetime,
) -> list[str]:
    """Bill one convênio's unbilled movements of [start, end) in one transaction; returns the
    new duplicatas' ids (none when there was nothing to bill)."""
    lo, hi = local_start(start, policy.time_zone), local_start(end, policy.time_zone)
    if issued < hi:
        # the period has not ended in the convênio's zone (a zone west of São Paulo at the
        # nightly hour): billing it now would leave its last sales out of every duplicata
        raise PeriodOpen(f"its period ends at {hi:%Y-%m-%d %H:%M} UTC ({policy.time_zone}); billed after that")
    by_participant = policy.in_participant_name
    # one snapshot for the totals and the items: a movement stored meanwhile is in neither
    async with conn.transaction(isolation="repeatable_read"):
        # Each movement of the period is checked against duplicata_items by its key: planned
        # per call (a cached generic plan guessed one row and scanned the whole table per
        # movement) and without a hash of the whole table, so the time follows the period
        # billed, not how much was ever billed (bench/month.py measured both)
        await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        await conn.execute("SET LOCAL enable_hashjoin = off")
        groups = await conn.fetch(_GROUPS, policy.code, lo, hi, by_participant)
        if not groups:
            return []
        ids = [new_duplicata_id() for _ in groups]
        whos = [g["who"] for g in groups]
        due = local_today(issued, policy.time_zone) + datetime.timedelta(days=policy.due_days)
        restore = "PENDING" if policy.rollover == "ON_BILLING" else "NONE"
        await conn.execute(
            _INSERT,
            policy.code,
            policy.period,
            start,
            end,
            policy.payment_method,
            issued,
            due,
            restore,
            ids,
            whos,
            [g["amount"] for g in groups],
            [g["n"] for g in groups],
        )
        await conn.execute(_ITEMS, policy.code, lo, hi, by_participant, ids, whos)
        # zero or less (reversals of sales billed before): nothing to collect. It is issued
        # settled, so ON_SETTLEMENT takes the amount back from the balances at once
        await conn.execute(
            """UPDATE duplicatas SET status = 'PAID', paid_at = issued_at, paid_by = 'system',
                 paid_note = 'nothing to collect',
                 restore = CASE WHEN $2 = 'ON_SETTLEMENT' THEN 'PENDING' ELSE restore END
               WHERE id = ANY($1::text[]) AND amount <= 0""",
            ids,
            policy.rollover,
        )
    return ids


async def generate(
    svc: Services,
    conn: asyncpg.Connection,
    date: datetime.date,
    *,
    convenio: str | None = None,
    now: datetime.datetime | None = None,
    by: str = "",
    ledger_wait_s: float = 30.0,
    progress: Progress | None = None,
) -> jobs.Run:
    """The nightly generation for local date (every convênio with automatic billing), or a
    run by hand for one convênio (whatever its billing mode)."""
    now = now or datetime.datetime.now(datetime.UTC)
    if date > local_today(now):
        raise TooEarly(f"{date} has not come yet: a run bills the periods closed before its date")
    key = date.isoformat() if convenio is None else f"{date.isoformat()}/{convenio}"
    async with jobs.job_run(conn, "duplicatas", key, now, by) as job:
        if job.already_done:
            return job
        await jobs.require_ledger(svc, ledger_wait_s)
        counts = job.counts
        counts.update(convenios=0, duplicatas=0, amount=0, restored=0)
        chosen = [p for p in await policies(conn, convenio) if convenio is not None or p.automatic]
        if convenio is not None and not chosen:
            raise UnknownConvenio(convenio)
        tick = progress("duplicatas", len(chosen)) if progress else None
        failed: list[str] = []
        for policy in chosen:
            period = period_of(policy, date, nightly=convenio is None)
            try:
                if period is not None:
                    ids = await bill(conn, policy, *period, issued=now)
                    counts["convenios"] += 1
                    counts["duplicatas"] += len(ids)
                    if ids:
                        counts["amount"] += await conn.fetchval(
                            "SELECT coalesce(sum(amount), 0)::bigint FROM duplicatas WHERE id = ANY($1::text[])", ids
                        )
                # what this billing gives back (ON_BILLING, credit notes), and what an earlier
                # generation or settlement left half-way
                counts["restored"] += await restore_pending(
                    svc, conn, convenio=policy.code, now=now, ledger_wait_s=ledger_wait_s, progress=progress
                )
            except (jobs.JobBusy, jobs.LedgerBehind):
                raise
            except Exception as exc:  # one convênio's trouble does not stop the others' bills
                failed.append(f"{policy.code}: {exc}")
            if tick:
                tick(1)
        if failed:
            counts["failed"] = failed
            raise RuntimeError(f"billing failed for {len(failed)} convênio(s): {'; '.join(failed)}")
        return job


# -- restoration (ON_BILLING at generation, ON_SETTLEMENT at settlement) --------------------------
async def restore_pending(
    svc: Services,
    conn: asyncpg.Connection,
    *,
    convenio: str | None = None,
    duplicata: str | None = None,
    now: datetime.datetime | None = None,
    ledger_wait_s: float = 30.0,
    progress: Progress | None = None,
) -> int:
    """Give each pending duplicata's billed amount back to the balances it came from; returns
    how many duplicatas were restored."""
    now = now or datetime.datetime.now(datetime.UTC)
    rows = await conn.fetch(
        """SELECT d.id, d.convenio, d.restore_started_at, c.shared, c.record->>'rollover_policy' AS policy
           FROM duplicatas d JOIN convenios c ON c.code = d.convenio
           WHERE d.restore = 'PENDING' AND ($1::text IS NULL OR d.convenio = $1) AND ($2::text IS NULL OR d.id = $2)
           ORDER BY d.id""",
        convenio,
        duplicata,
    )
    done = 0
    for r in rows:
        if not await locks.try_acquire(conn, Lock.RESTORATION, r["id"]):
            continue  # another process is restoring it right now
        try:
            done += await _restore_one(svc, conn, r, now, ledger_wait_s, progress)
        finally:
            await locks.release(conn, Lock.RESTORATION, r["id"])
    return done


async def _restore_one(
    svc: Services,
    conn: asyncpg.Connection,
    r: asyncpg.Record,
    now: datetime.datetime,
    ledger_wait_s: float,
    progress: Progress | None,
) -> int:
    dup_id = r["id"]
    # under the lock, read again: a process that held it may have finished
    state = await conn.fetchrow(
        """UPDATE duplicatas SET restore_started_at = coalesce(restore_started_at, $2),
                                 restore_attempts = restore_attempts + 1
           WHERE id = $1 AND restore = 'PENDING'
           RETURNING restore_attempts, issued_at""",
        dup_id,
        now,
    )
    if state is None:
        return 0
    skip: set[str] = set()
    if state["restore_attempts"] > 1:
        # an earlier attempt died half-way: the pools it gave back to are in the journal
        await jobs.require_ledger(svc, ledger_wait_s)
        skip = await balance_batch.already_done(conn, r["convenio"], "RESTORE", dup_id, state["issued_at"])
    sums = await conn.fetch(
        """SELECT CASE WHEN pool = 'C' THEN '' ELSE participant END AS code, sum(amount)::bigint AS amount
           FROM duplicata_items WHERE duplicata = $1 GROUP BY 1 ORDER BY 1""",
        dup_id,
    )
    pools = [(s["code"], s["amount"], None) for s in sums if s["amount"]]
    tick = progress(f"restore {dup_id}", len(pools)) if progress else None
    policy = r["policy"] if r["policy"] in ("ON_BILLING", "ON_SETTLEMENT") else "ON_BILLING"
    applied = await balance_batch.apply(
        svc, r["convenio"], "RESTORE", dup_id, policy, pools, shared=r["shared"], skip=skip, progress=tick
    )
    if applied.missing:  # Redis lost them: the restoration stays PENDING until they are back
        raise RuntimeError(
            f"{len(applied.missing)} participant(s) of {r['convenio']} are not in Redis "
            f"(e.g. {applied.missing[0]}): run `convenio rebuild`, then `convenio duplicatas restore`"
        )
    await conn.execute("UPDATE duplicatas SET restore = 'DONE', restored_at = $2 WHERE id = $1", dup_id, now)
    return 1


# -- settlement and overdue blocking ------------------------------------------------------------
async def settle(
    svc: Services,
    conn: asyncpg.Connection,
    dup_id: str,
    *,
    now: datetime.datetime | None = None,
    by: str = "",
    note: str = "",
    ledger_wait_s: float = 30.0,
) -> dict[str, Any]:
    """Quitação: mark the duplicata PAID; ON_SETTLEMENT gives its amount back to the balances;
    the convênio is unblocked once nothing overdue is left. Settling again answers the same
    (and finishes a restoration an earlier attempt left half-way)."""
    now = now or datetime.datetime.now(datetime.UTC)
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE duplicatas d
               SET status = 'PAID', paid_at = $2, paid_by = $3, paid_note = nullif($4, ''),
                   restore = CASE WHEN c.record->>'rollover_policy' = 'ON_SETTLEMENT' AND d.restore = 'NONE'
                                  THEN 'PENDING' ELSE d.restore END
               FROM convenios c
               WHERE d.id = $1 AND d.status = 'OPEN' AND c.code = d.convenio
               RETURNING d.convenio, d.amount""",
            dup_id,
            now,
            by or jobs.operator(),
            note,
        )
        if row is not None:  # settled now, not a repeat: audited with it, in its transaction
            await audit.record(
                conn,
                actor=by or jobs.operator(),
                action="duplicata.settled",
                target=f"duplicata {dup_id}",
                before={"status": "OPEN", "convenio": row["convenio"], "amount": row["amount"]},
                after={"status": "PAID", "note": note},
                at=now,
            )
    if row is None and not await conn.fetchval("SELECT convenio FROM duplicatas WHERE id = $1", dup_id):
        raise UnknownDuplicata(dup_id)
    view = await get(conn, dup_id)
    try:
        await restore_pending(svc, conn, duplicata=dup_id, now=now, ledger_wait_s=ledger_wait_s)
    finally:  # paid is paid: the block is lifted even if giving the amount back must wait
        await _standing(svc, conn, view["convenio"], local_today(now))
    return await get(conn, dup_id)


_OVERDUE = """
SELECT DISTINCT d.convenio FROM duplicatas d JOIN convenios c ON c.code = d.convenio
WHERE d.status = 'OPEN' AND d.amount > 0 AND ($2::text IS NULL OR d.convenio = $2)
  AND d.due_date + coalesce((c.record->>'billing_block_after_days')::int, 5) < $1
"""


async def _standing(svc: Services, conn: asyncpg.Connection, convenio: str, today: datetime.date) -> str | None:
    """Block the convênio when it has an overdue duplicata, unblock it when it has none (only
    ever between ACTIVE and BLOCKED_OVERDUE: a block set by hand stays). Returns the change."""
    overdue = bool(await conn.fetch(_OVERDUE, today, convenio))
    frm, to = ("ACTIVE", "BLOCKED_OVERDUE") if overdue else ("BLOCKED_OVERDUE", "ACTIVE")
    k = svc.keys
    reason = "duplicata overdue" if overdue else "no duplicata overdue"
    res = await svc.run(
        "convenio_standing",
        [k.convenio(convenio), k.events(k.shard_of(convenio))],
        [svc.now_ms(), svc.protocol(), convenio, frm, to, reason],
    )
    if res["ok"] and res["r"]["changed"]:
        return to
    return None


async def overdue(
    svc: Services,
    conn: asyncpg.Connection,
    date: datetime.date,
    *,
    now: datetime.datetime | None = None,
    by: str = "",
) -> jobs.Run:
    """The nightly check: block convênios with a duplicata overdue by more than their
    billing's block_after_days on local date; unblock those with none left."""
    now = now or datetime.datetime.now(datetime.UTC)
    async with jobs.job_run(conn, "overdue", date.isoformat(), now, by) as job:
        if job.already_done:
            return job
        job.counts.update(blocked=[], unblocked=[])
        rows = await conn.fetch(
            """SELECT code FROM convenios WHERE status IN ('ACTIVE', 'BLOCKED_OVERDUE') ORDER BY code"""
        )
        for r in rows:
            change = await _standing(svc, conn, r["code"], date)
            if change == "BLOCKED_OVERDUE":
                job.counts["blocked"].append(r["code"])
            elif change == "ACTIVE":
                job.counts["unblocked"].append(r["code"])
        return job


# -- reads --------------------------------------------------------------------------------------
def _view(r: asyncpg.Record) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": r["id"],
        "convenio": r["convenio"],
        "participant": r["participant"],
        "period": r["period"],
        "period_start": r["period_start"].isoformat(),
        "period_end": r["period_end"].isoformat(),
        "amount": r["amount"],
        "items": r["items"],
        "payment_method": r["payment_method"],
        "issued_at": iso_or_none(r["issued_at"]),
        "due_date": r["due_date"].isoformat(),
        "status": r["status"],
        "paid_at": iso_or_none(r["paid_at"]),
        "paid_by": r["paid_by"],
        "restore": r["restore"],
    }
    return out


async def get(conn: asyncpg.Connection, dup_id: str, *, items: bool = False) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT * FROM duplicatas WHERE id = $1", dup_id)
    if row is None:
        raise UnknownDuplicata(dup_id)
    view = _view(row)
    if items:
        rows = await conn.fetch(
            """SELECT movement, participant, pool, empenho_id, kind, amount, at
               FROM duplicata_items WHERE duplicata = $1 ORDER BY at, movement""",
            dup_id,
        )
        view["lines"] = [
            {
                "movement": i["movement"],
                "participant": i["participant"],
                "empenho": i["empenho_id"],
                "kind": i["kind"],
                "amount": i["amount"],
                "at": iso(i["at"]),
            }
            for i in rows
        ]
    return view


async def listing(
    conn: asyncpg.Connection, convenio: str | None = None, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT * FROM duplicatas
           WHERE ($1::text IS NULL OR convenio = $1) AND ($2::text IS NULL OR status = $2)
           ORDER BY period_start DESC, convenio, participant NULLS FIRST, id LIMIT $3""",
        convenio,
        status,
        limit,
    )
    return [_view(r) for r in rows]
