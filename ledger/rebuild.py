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

from gateway.core import Gateway
from gateway.ids import empenho_shard
from gateway.ledger_lag import ledger_lag
from gateway.scripts import source

PCONV_ADD = source("pconv_add")

Progress = Callable[[str, int], None]

#: limit-window counters (reserve.lua): live spending, never restored from a stale record
WINDOW_COUNTERS = ("wd", "wds", "wm", "wms")


class RedisNotEmpty(RuntimeError):
    pass


@dataclass
class Rebuilt:
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n


def _ms(value: datetime.datetime | None) -> int:
    return 0 if value is None else int(value.timestamp() * 1000)


async def product_keys(gw: Gateway) -> list[str]:
    """The product's keys that hold data (not the shard-count marker, not empty streams)."""
    streams = set(gw.keys.all_events())
    found = []
    async for raw in gw.redis.scan_iter(match=f"{gw.keys.prefix}:*", count=1000):
        key = raw.decode()
        if key == gw.keys.meta():
            continue
        if key in streams and await gw.redis.xlen(key) == 0:
            continue
        found.append(key)
    return found


async def clear(gw: Gateway) -> int:
    streams = set(gw.keys.all_events())
    keys = [k for k in await product_keys(gw) if k not in streams]
    for start in range(0, len(keys), 1000):
        await gw.redis.unlink(*keys[start : start + 1000])
    return len(keys)


class _Writes:
    """Pipelined writes, flushed every `size` commands."""

    def __init__(self, gw: Gateway, size: int = 2000) -> None:
        self.pipe = gw.redis.pipeline(transaction=False)
        self.size = size
        self.n = 0

    async def add(self, fn: Callable[[Any], Any]) -> None:
        fn(self.pipe)
        self.n += 1
        if self.n >= self.size:
            await self.flush()

    async def flush(self) -> None:
        if self.n:
            await self.pipe.execute()
            self.n = 0


async def rebuild(
    gw: Gateway, conn: asyncpg.Connection, force: bool = False, progress: Progress | None = None
) -> Rebuilt:
    say = progress or (lambda what, n: None)
    present = await product_keys(gw)
    if present:
        if not force:
            raise RedisNotEmpty(
                f"Redis already holds {len(present)} of the product's keys (e.g. {present[0]}); "
                "rebuild only fills an empty Redis. Use --force to clear and rebuild it."
            )
        lag = await ledger_lag(gw)
        if lag:
            raise RedisNotEmpty(
                f"{lag} events in Redis are not stored in Postgres yet; clearing Redis would lose them. "
                "Let the ledger writer (convenio ledger) catch up first."
            )
        say("cleared keys", await clear(gw))

    k = gw.keys
    now = gw.now_ms()
    done = Rebuilt()
    w = _Writes(gw)
    pconv_add = await gw.redis.script_load(PCONV_ADD)  # then EVALSHA: not the text a million times
    await gw.check_shards()

    for r in await conn.fetch("SELECT * FROM api_keys"):
        fields = {
            "id": r["id"],
            "permissions": r["permissions"],
            "name": r["name"],
            "created_at": _ms(r["created_at"]),
            "revoked": 1 if r["revoked_at"] else 0,
        }
        if r["revoked_at"]:
            fields["revoked_at"] = _ms(r["revoked_at"])
        await w.add(lambda p, r=r, f=fields: p.hset(k.api_key(r["digest"]), mapping=f))
        await w.add(lambda p, r=r: p.hset(k.api_key_ids(), r["id"], r["digest"]))
        done.add("api keys")
    key = await conn.fetchrow("SELECT digest, updated_at FROM integration_key")
    if key is not None:
        mapping = {"digest": key["digest"], "updated_at": _ms(key["updated_at"])}
        await w.add(lambda p: p.hset(k.integration(), mapping=mapping))
        done.add("integration key")

    for r in await conn.fetch("SELECT * FROM convenios"):
        fields = dict(json.loads(r["record"]))
        for counter in WINDOW_COUNTERS:
            fields.pop(counter, None)
        fields.update(balance=r["balance"], reserved=r["reserved"], allocated=r["allocated"])
        await w.add(lambda p, c=r["code"], f=fields: p.hset(k.convenio(c), mapping=f))
        done.add("convênios")
    say("convênios", done.counts.get("convênios", 0))

    async with conn.transaction():  # a cursor needs one; it streams a million rows in pages
        async for r in conn.cursor("SELECT * FROM participants"):
            c, code = r["convenio"], r["participant"]
            fields = dict(json.loads(r["record"]))
            fields.pop("convenio", None), fields.pop("participant", None)  # the key names them
            for counter in WINDOW_COUNTERS:  # a window's spending so far is not in the record: it restarts
                fields.pop(counter, None)
            fields.update(balance=r["balance"], reserved=r["reserved"], pw_failures=0)
            if r["pw_hash"]:
                fields["pw_hash"] = r["pw_hash"]
            locked = _ms(r["pw_locked_until"])
            fields["pw_locked_until"] = locked if locked > now else 0
            await w.add(lambda p, c=c, code=code, f=fields: p.hset(k.participant(c, code), mapping=f))
            await w.add(lambda p, c=c, code=code: p.sadd(k.members(c), code))
            index = k.participant_convenios(code)
            await w.add(lambda p, c=c, code=code, i=index: p.evalsha(pconv_add, 1, i, code, c))
            done.add("participants")
    say("participants", done.counts.get("participants", 0))

    for r in await conn.fetch("SELECT * FROM vehicles"):
        v: dict[str, Any] = {
            "plate": r["plate"],
            "registered_at": _ms(r["registered_at"]),
            "description": r["description"],
        }
        if r["last_km"] is not None:
            v["last_km"], v["last_km_at"] = r["last_km"], _ms(r["last_km_at"])
        key_ = k.vehicles(r["convenio"], r["participant"])
        await w.add(lambda p, key_=key_, v=v: p.hset(key_, v["plate"], json.dumps(v)))
        done.add("vehicles")

    await _empenhos(gw, conn, w, done, now)
    say("empenhos", done.counts.get("pending empenhos", 0) + done.counts.get("final empenhos", 0))
    await _idempotency(gw, conn, w, done, now)
    await w.flush()
    say("idempotency answers", done.counts.get("idempotency answers", 0))
    # the customers' credits and credit holds (issue 7)
    from ledger import credit_projections

    for what, n in (await credit_projections.restore(gw, conn)).items():
        done.add(what, n)
        say(what, n)
    return done


async def _empenhos(gw: Gateway, conn: asyncpg.Connection, w: _Writes, done: Rebuilt, now: int) -> None:
    k, s = gw.keys, gw.settings
    since = datetime.datetime.fromtimestamp((now - s.final_empenho_ttl_s * 1000) / 1000, datetime.UTC)
    rows = await conn.fetch("SELECT * FROM empenhos WHERE status = 'PENDING' OR ended_at > $1", since)
    history: dict[str, list[asyncpg.Record]] = {}
    for h in await conn.fetch(
        """SELECT h.* FROM empenho_history h JOIN empenhos e ON e.id = h.empenho_id
           WHERE e.status = 'PENDING' OR e.ended_at > $1 ORDER BY h.seq""",
        since,
    ):
        history.setdefault(h["empenho_id"], []).append(h)
    for e in rows:
        shard = empenho_shard(e["id"], s.shards)
        if shard is None:
            continue
        fields: dict[str, Any] = {
            "id": e["id"],
            "convenio": e["convenio"],
            "participant": e["participant"],
            "amount": e["amount"],
            "status": e["status"],
            "pool": e["pool"],
            "created_at": _ms(e["created_at"]),
            "expires_at": _ms(e["expires_at"]),
            "terminal": e["terminal"],
            "store": e["store"],
            "sale": e["sale"],
            "plate": e["plate"],
            "odometer_km": "" if e["odometer_km"] is None else e["odometer_km"],
            "protocol": e["protocol"],
            "order": e["order_ref"] or "",
        }
        if e["committed_amount"] is not None:
            fields.update(committed_amount=e["committed_amount"], coupon=e["coupon"], commit_result=e["commit_result"])
        if e["ended_at"] is not None:
            fields["ended_at"] = _ms(e["ended_at"])
        if e["cancel_result"] is not None:
            fields.update(cancel_reason=e["cancel_reason"] or "", cancel_result=e["cancel_result"])
        emp_key, hist_key = k.empenho(shard, e["id"]), k.empenho_history(shard, e["id"])
        entries = [
            json.dumps({"status": h["status"], "at": _ms(h["at"]), "protocol": h["protocol"], "amount": h["amount"]})
            for h in history.get(e["id"], [])
        ]
        await w.add(lambda p, key=emp_key, f=fields: p.hset(key, mapping=f))
        if entries:
            await w.add(lambda p, key=hist_key, x=entries: p.rpush(key, *x))
        if e["status"] == "PENDING":
            await w.add(lambda p, shard=shard, e=e: p.zadd(k.pending(shard), {e["id"]: _ms(e["expires_at"])}))
            done.add("pending empenhos")
        else:
            ttl = max(1, (_ms(e["ended_at"]) + s.final_empenho_ttl_s * 1000 - now) // 1000)
            await w.add(lambda p, key=emp_key, ttl=ttl: p.expire(key, ttl))
            await w.add(lambda p, key=hist_key, ttl=ttl: p.expire(key, ttl))
            done.add("final empenhos")


async def _idempotency(gw: Gateway, conn: asyncpg.Connection, w: _Writes, done: Rebuilt, now: int) -> None:
    """Each hold decision within the window answers its retries again, and its key stays taken."""
    k, s = gw.keys, gw.settings
    since = datetime.datetime.fromtimestamp((now - s.idempotency_ttl_s * 1000) / 1000, datetime.UTC)
    rows = await conn.fetch(
        "SELECT at, data FROM journal WHERE type IN ('empenho.held', 'empenho.declined') AND at > $1 ORDER BY at",
        since,
    )
    for r in rows:
        d = json.loads(r["data"])
        if not d.get("idem") or not d.get("fp") or not d.get("answer"):
            continue  # an event from before the ledger kept idempotency (nothing to restore)
        ttl = max(1, (_ms(r["at"]) + s.idempotency_ttl_s * 1000 - now) // 1000)
        record = json.dumps({"fp": d["fp"], "r": d["answer"]})
        api_key, idem = d.get("api_key") or "", d["idem"]
        idem_key = k.idempotency(d["convenio"], api_key, idem)
        claim_key = k.idempotency_claim(api_key, idem)
        await w.add(lambda p, key=idem_key, v=record, ttl=ttl: p.set(key, v, ex=ttl))
        await w.add(lambda p, key=claim_key, v=d["fp"], ttl=ttl: p.set(key, v, ex=ttl))
        done.add("idempotency answers")
