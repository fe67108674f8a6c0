"""`convenio rebuild`: put back into Redis, from the ledger in Postgres, everything the gateway
needs after Redis lost its data: the registry (convênios, participants, vehicles, API keys,
the integration key), balances and reserved amounts, password hashes and locks, pending
empenhos (and final ones still within their time in Redis, so retried commits and cancels
replay), and the idempotency answers still within their window.

It refuses a Redis that holds data unless forced; forced, it first checks that every event
in Redis is stored (else those would be lost), then clears the product's keys, except the
event streams.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from gateway.credits import holds as credit_holds
from gateway.holds import empenhos, lifecycle
from gateway.platform.clock import to_ms, utc
from gateway.platform.ids import credit_hold_shard, empenho_shard
from gateway.platform.redis.scripts import source
from gateway.platform.services import Services
from gateway.platform.streams import ledger_lag

PCONV_ADD = source("pconv_add")

Progress = Callable[[str, int], None]

#: limit-window counters (empenho_hold.lua): live spending, never restored from a stale record
WINDOW_COUNTERS = ("wd", "wds", "wm", "wms")


class RedisNotEmpty(RuntimeError):
    pass


@dataclass
class Rebuilt:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n


async def product_keys(svc: Services) -> list[str]:
    """The product's keys that hold data (not the shard-count marker, not empty streams)."""
    streams = set(svc.keys.all_events())
    found = []
    async for raw in svc.redis.scan_iter(match=f"{svc.keys.prefix}:*", count=1000):
        key = raw.decode()
        if key == svc.keys.meta():
            continue
        if key in streams and await svc.redis.xlen(key) == 0:
            continue
        found.append(key)
    return found


async def clear(svc: Services) -> int:
    streams = set(svc.keys.all_events())
    keys = [k for k in await product_keys(svc) if k not in streams]
    for start in range(0, len(keys), 1000):
        await svc.redis.unlink(*keys[start : start + 1000])
    return len(keys)


class _Writes:
    """Pipelined writes, flushed every `size` commands."""

    def __init__(self, svc: Services, size: int = 2000) -> None:
        self.pipe = svc.redis.pipeline(transaction=False)
        self.size = size
        self.n = 0

    async def step(self) -> None:
        """Count one command queued on `pipe`; flush when the pipeline is full."""
        self.n += 1
        if self.n >= self.size:
            await self.flush()

    async def flush(self) -> None:
        if self.n:
            await self.pipe.execute()
            self.n = 0


async def rebuild(
    svc: Services, conn: asyncpg.Connection, force: bool = False, progress: Progress | None = None
) -> Rebuilt:
    say = progress or (lambda what, n: None)
    present = await product_keys(svc)
    if present:
        if not force:
            raise RedisNotEmpty(
                f"Redis already holds {len(present)} of the product's keys (e.g. {present[0]}); "
                "rebuild only fills an empty Redis. Use --force to clear and rebuild it."
            )
        lag = await ledger_lag(svc)
        if lag:
            raise RedisNotEmpty(
                f"{lag} events in Redis are not stored in Postgres yet; clearing Redis would lose them. "
                "Let the ledger writer (convenio ledger) catch up first."
            )
        say("cleared keys", await clear(svc))

    k = svc.keys
    now = svc.now_ms()
    done = Rebuilt()
    w = _Writes(svc)
    pconv_add = await svc.redis.script_load(PCONV_ADD)  # then EVALSHA: not the text a million times
    await svc.check_shards()

    for r in await conn.fetch("SELECT * FROM api_keys"):
        fields = {
            "id": r["id"],
            "permissions": r["permissions"],
            "name": r["name"],
            "created_at": to_ms(r["created_at"]),
            "revoked": 1 if r["revoked_at"] else 0,
            "store": r["store"] or "",
            "terminal": r["terminal"] or "",
            "lineage": r["lineage"] or r["id"],
        }
        if r["revoked_at"]:
            fields["revoked_at"] = to_ms(r["revoked_at"])
        if r["expires_at"]:
            fields["expires_at"] = to_ms(r["expires_at"])
        w.pipe.hset(k.api_key(r["digest"]), mapping=fields)
        await w.step()
        w.pipe.hset(k.api_key_ids(), r["id"], r["digest"])
        await w.step()
        done.add("api keys")
    for r in await conn.fetch("SELECT * FROM stores"):
        store = {
            "code": r["code"],
            "name": r["name"],
            "time_zone": r["time_zone"],
            "status": r["status"],
            "created_at": to_ms(r["created_at"]),
            "updated_at": to_ms(r["updated_at"]),
        }
        w.pipe.hset(k.store(r["code"]), mapping=store)
        await w.step()
        w.pipe.sadd(k.stores(), r["code"])
        await w.step()
        done.add("stores")
    for r in await conn.fetch("SELECT store, terminal, status FROM store_terminals"):
        w.pipe.hset(k.store_terminals(r["store"]), r["terminal"], r["status"])
        await w.step()
        done.add("terminals")
    key = await conn.fetchrow("SELECT digest, updated_at FROM integration_key")
    if key is not None:
        mapping = {"digest": key["digest"], "updated_at": to_ms(key["updated_at"])}
        w.pipe.hset(k.integration(), mapping=mapping)
        await w.step()
        done.add("integration key")

    for r in await conn.fetch("SELECT * FROM convenios"):
        fields = dict(json.loads(r["record"]))
        for counter in WINDOW_COUNTERS:
            fields.pop(counter, None)
        fields.update(balance=r["balance"], reserved=r["reserved"], allocated=r["allocated"])
        w.pipe.hset(k.convenio(r["code"]), mapping=fields)
        await w.step()
        done.add("convênios")
    say("convênios", done.counts.get("convênios", 0))

    locks: dict[str, int] = {}  # customer -> until when a password lock still runs (ms)
    async with conn.transaction():  # a cursor needs one; it streams a million rows in pages
        async for r in conn.cursor("SELECT * FROM participants"):
            c, code = r["convenio"], r["participant"]
            fields = dict(json.loads(r["record"]))
            fields.pop("convenio", None), fields.pop("participant", None)  # the key names them
            fields.pop("document", None)  # a clear document from before 013 never goes back to Redis
            for counter in WINDOW_COUNTERS:  # a window's spending so far is not in the record: it restarts
                fields.pop(counter, None)
            fields.update(balance=r["balance"], reserved=r["reserved"])
            if r["pw_hash"]:
                fields["pw_hash"] = r["pw_hash"]
            # a lock holds every convênio of the customer (gateway/auth/password_check.py); the
            # count of failures is transient and starts again
            locked = to_ms(r["pw_locked_until"])
            if locked > now:
                locks[code] = max(locks.get(code, 0), locked)
            w.pipe.hset(k.participant(c, code), mapping=fields)
            await w.step()
            w.pipe.sadd(k.members(c), code)
            await w.step()
            index = k.participant_convenios(code)
            if svc.cluster:  # redis-py refuses EVALSHA queued on a cluster pipeline: one call each
                await svc.run("pconv_add", [index], [code, c])
            else:
                w.pipe.evalsha(pconv_add, 1, index, code, c)
                await w.step()
            done.add("participants")
    for code, locked in locks.items():
        w.pipe.hset(k.password_lockout(code), mapping={"failures": 0, "locked_until": locked, "at": now})
        await w.step()
        w.pipe.pexpire(k.password_lockout(code), locked - now)
        await w.step()
    say("participants", done.counts.get("participants", 0))

    for r in await conn.fetch("SELECT * FROM vehicles"):
        v: dict[str, Any] = {
            "plate": r["plate"],
            "registered_at": to_ms(r["registered_at"]),
            "description": r["description"],
        }
        if r["last_km"] is not None:
            v["last_km"], v["last_km_at"] = r["last_km"], to_ms(r["last_km_at"])
        key_ = k.vehicles(r["convenio"], r["participant"])
        w.pipe.hset(key_, v["plate"], json.dumps(v))
        await w.step()
        done.add("vehicles")

    await _empenhos(svc, conn, w, done, now)
    say("empenhos", done.counts.get("pending empenhos", 0) + done.counts.get("final empenhos", 0))
    await _answers(svc, conn, w, done, now, EMPENHO_ANSWERS)
    await w.flush()
    say("idempotency answers", done.counts.get("idempotency answers", 0))
    for what, n in (await restore_credits(svc, conn)).items():
        done.add(what, n)
        say(what, n)
    return done


def _since(now: int, ttl_s: int) -> datetime.datetime:
    return utc(now - ttl_s * 1000)


def _final(h: asyncpg.Record) -> dict[str, Any]:
    """What a final hold (of either kind) keeps to replay its commit or cancel."""
    fields: dict[str, Any] = {}
    if h["committed_amount"] is not None:
        fields.update(committed_amount=h["committed_amount"], coupon=h["coupon"], commit_result=h["commit_result"])
    if h["ended_at"] is not None:
        fields["ended_at"] = to_ms(h["ended_at"])
    if h["cancel_result"] is not None:
        fields.update(cancel_reason=h["cancel_reason"] or "", cancel_result=h["cancel_result"])
    return fields


async def _hold(
    svc: Services,
    w: _Writes,
    done: Rebuilt,
    now: int,
    kind: lifecycle.Kind,
    shard: int,
    h: asyncpg.Record,
    fields: dict[str, Any],
    beside: tuple[str, ...] = (),
) -> None:
    """One hold of either kind back in Redis: its record (and the keys `beside` it, which live as
    long), indexed for expiry while PENDING, else kept as long as a final hold stays."""
    k = svc.keys
    key = kind.record(k, shard, h["id"])
    w.pipe.hset(key, mapping={**fields, **_final(h)})
    await w.step()
    if h["status"] == "PENDING":
        pending = kind.pending(k, shard)
        w.pipe.zadd(pending, {h["id"]: to_ms(h["expires_at"])})
        await w.step()
        done.add(f"pending {kind.name}s")
        return
    ttl = max(1, (to_ms(h["ended_at"]) + svc.settings.final_empenho_ttl_s * 1000 - now) // 1000)
    for each in (key, *beside):
        w.pipe.expire(each, ttl)
        await w.step()
    done.add(f"final {kind.name}s")


LIVE_EMPENHOS = "SELECT * FROM empenhos WHERE status = 'PENDING' OR ended_at > $1"
LIVE_EMPENHO_HISTORY = """SELECT h.* FROM empenho_history h JOIN empenhos e ON e.id = h.empenho_id
                          WHERE e.status = 'PENDING' OR e.ended_at > $1 ORDER BY h.seq"""
LIVE_EMPENHO_RETURNS = """SELECT r.* FROM empenho_returns r JOIN empenhos e ON e.id = r.empenho_id
                          WHERE e.ended_at > $1 ORDER BY r.at, r.id"""


async def _empenhos(svc: Services, conn: asyncpg.Connection, w: _Writes, done: Rebuilt, now: int) -> None:
    k, s = svc.keys, svc.settings
    since = _since(now, s.final_empenho_ttl_s)
    history: dict[str, list[asyncpg.Record]] = {}
    for h in await conn.fetch(LIVE_EMPENHO_HISTORY, since):
        history.setdefault(h["empenho_id"], []).append(h)
    returns: dict[str, list[asyncpg.Record]] = {}
    for r in await conn.fetch(LIVE_EMPENHO_RETURNS, since):
        returns.setdefault(r["empenho_id"], []).append(r)
    for e in await conn.fetch(LIVE_EMPENHOS, since):
        shard = empenho_shard(e["id"], s.shards)
        if shard is None:
            continue
        fields, entries = empenhos.record_of(e, history.get(e["id"], []), returns.get(e["id"], []))
        hist_key = k.empenho_history(shard, e["id"])
        if entries:
            w.pipe.rpush(hist_key, *entries)
            await w.step()
        await _hold(svc, w, done, now, lifecycle.EMPENHO, shard, e, fields, beside=(hist_key,))


@dataclass(frozen=True)
class Answers:
    """The placement decisions of one kind of hold, whose answers replay within their window."""

    counted: str
    types: tuple[str, ...]
    #: (keys, the event's data) -> the key the answer lives under
    record: Callable[[Any, dict[str, Any]], str]


EMPENHO_ANSWERS = Answers(
    "idempotency answers",
    ("empenho.held", "empenho.declined"),
    lambda k, d: k.idempotency(d["convenio"], d.get("api_key") or "", d["idem"]),
)
CREDIT_HOLD_ANSWERS = Answers(
    "credit idempotency answers",
    ("credit.held", "credit.declined"),
    lambda k, d: k.credit_idempotency(d["customer"], d.get("api_key") or "", d["idem"]),
)
ANSWERS_SQL = "SELECT at, data FROM journal WHERE type = ANY($1::text[]) AND at > $2 ORDER BY at"


async def _answers(svc: Services, conn: asyncpg.Connection, w: _Writes, done: Rebuilt, now: int, kind: Answers) -> None:
    """Each placement decision within the window answers its retries again, and its
    Idempotency-Key stays claimed."""
    k, s = svc.keys, svc.settings
    for r in await conn.fetch(ANSWERS_SQL, list(kind.types), _since(now, s.idempotency_ttl_s)):
        d = json.loads(r["data"])
        if not d.get("idem") or not d.get("fp") or not d.get("answer"):
            continue  # an event from before the ledger kept idempotency (nothing to restore)
        ttl = max(1, (to_ms(r["at"]) + s.idempotency_ttl_s * 1000 - now) // 1000)
        record = json.dumps({"fp": d["fp"], "r": d["answer"]})
        claim = k.idempotency_claim(d.get("api_key") or "", d["idem"])
        w.pipe.set(kind.record(k, d), record, ex=ttl)
        await w.step()
        w.pipe.set(claim, d["fp"], ex=ttl)
        await w.step()
        done.add(kind.counted)


# -- the customers' credits, credit holds and the ERP's order statuses ----------------------------
CREDITS_SQL = "SELECT * FROM credits ORDER BY customer, seq"
LIVE_CREDIT_HOLDS = "SELECT * FROM credit_holds WHERE status = 'PENDING' OR ended_at > $1"
PARTS_SQL = """SELECT hold_id, seq, credit_id, held, committed, returned FROM credit_hold_parts
               WHERE hold_id = ANY($1::text[]) ORDER BY hold_id, seq"""
HISTORY_SQL = """SELECT hold_id, status, at, protocol, amount FROM credit_hold_history
                 WHERE hold_id = ANY($1::text[]) ORDER BY seq"""
RETURNS_SQL = "SELECT * FROM credit_hold_returns WHERE hold_id = ANY($1::text[]) ORDER BY at, id"
PARAMS_SQL = "SELECT * FROM order_status_params"
REPORTS_SQL = "SELECT order_ref, status, report::text AS report, at FROM order_statuses WHERE at > $1"


async def restore_credits(svc: Services, conn: asyncpg.Connection) -> dict[str, int]:
    """Every customer's credits (remaining, references, open set), the credit holds still PENDING
    and the final ones within their time, the orders' indexes of them, the credit holds'
    idempotency answers within their window, and the ERP's order-status parameters and kept
    reports. Restoring twice changes nothing."""
    k, s = svc.keys, svc.settings
    now = svc.now_ms()
    done = Rebuilt(
        dict.fromkeys(("credits", "pending credit holds", "final credit holds", "credit idempotency answers"), 0)
    )
    w = _Writes(svc)
    for r in await conn.fetch(CREDITS_SQL):
        rec = {
            "id": r["id"],
            "customer": r["customer"],
            "ref": r["reference"],
            "type": r["type"],
            "amount": r["amount"],
            "remaining": r["remaining"],
            "channel": r["channel"],
            "store": r["store"] or "",
            "terminal": r["terminal"] or "",
            "order": r["order_ref"] or "",
            "expires_at": to_ms(r["expires_at"]),
            "created_at": to_ms(r["created_at"]),
            "seq": r["seq"],
            "protocol": r["protocol"],
            "fp": r["fingerprint"],
        }
        w.pipe.hset(k.credits(r["customer"]), r["id"], json.dumps(rec))
        await w.step()
        w.pipe.hset(k.credit_refs(r["customer"]), r["reference"], r["id"])
        await w.step()
        if r["remaining"] > 0:
            w.pipe.sadd(k.credits_open(r["customer"]), r["id"])
            await w.step()
        done.add("credits")

    holds = await conn.fetch(LIVE_CREDIT_HOLDS, _since(now, s.final_empenho_ttl_s))
    ids = [h["id"] for h in holds]
    rows: dict[str, dict[str, list[asyncpg.Record]]] = {}
    fetched = (
        ("parts", await conn.fetch(PARTS_SQL, ids)),
        ("history", await conn.fetch(HISTORY_SQL, ids)),
        ("returns", await conn.fetch(RETURNS_SQL, ids)),
    )
    for name, found in fetched:
        for r in found:
            rows.setdefault(r["hold_id"], {}).setdefault(name, []).append(r)
    for h in holds:
        shard = credit_hold_shard(h["id"], s.shards)
        if shard is None:
            continue
        of = rows.get(h["id"], {})
        fields = credit_holds.record_of(h, of.get("parts", []), of.get("history", []), of.get("returns", []))
        index = k.order_holds(h["order_ref"])
        w.pipe.sadd(index, h["id"])
        await w.step()
        w.pipe.expire(index, s.hold_ttl_s + s.final_empenho_ttl_s)
        await w.step()
        await _hold(svc, w, done, now, lifecycle.CREDIT_HOLD, shard, h, fields)
    await _answers(svc, conn, w, done, now, CREDIT_HOLD_ANSWERS)

    for p in await conn.fetch(PARAMS_SQL):
        mapping = {
            "commit": p["commit_statuses"],
            "cancel": p["cancel_statuses"],
            "update_balance": "1" if p["update_balance"] else "0",
            "updated_at": to_ms(p["updated_at"]),
            "by": p["updated_by"],
        }
        w.pipe.hset(k.order_status_params(), mapping=mapping)
        await w.step()
    for r in await conn.fetch(REPORTS_SQL, _since(now, s.idempotency_ttl_s)):
        key = k.order_status_results(r["order_ref"])
        ttl = max(1, (to_ms(r["at"]) + s.idempotency_ttl_s * 1000 - now) // 1000)
        w.pipe.hset(key, r["status"], r["report"])
        await w.step()
        w.pipe.expire(key, ttl)
        await w.step()
    await w.flush()
    return done.counts
