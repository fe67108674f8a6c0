"""Projections of the customers' credits, credit holds and orders (issue 7): registered in
ledger/projections.py's EXTENSIONS.

From the events of gateway/lua/credit_*.lua and order_status_*.lua (sql/006_credits.sql):
  credits              each credit with what it has remaining (every event that moves a credit
                       carries the credit's remaining after it; the last one of a batch wins)
  credit_holds, _parts each hold, and what it took from each credit (and committed)
  credit_hold_history  each status a hold went through, under its protocol
  credit_movements     finance's record: CREDIT (registered), DEBIT (a committed part), RETURN
                       (a reversed part), one row per credit, with reference and type
  order_status_params, order_statuses   the order-status integration's parameters and reports
  decisions            the decision log's entry for each credit decision (GET /v1/protocols/{p})
Events of one customer all live in its shard's stream, so the fold sees them in script order.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import asyncpg
import msgspec

from gateway.clock import rfc3339
from gateway.core import Gateway
from gateway.credits import hold_shard
from gateway.errors import ERRORS, ErrorCode
from ledger import projections
from ledger.projections import DECISION_COLUMNS, Event, Table, ms

_encode = msgspec.json.Encoder().encode
MOVEMENT_COLUMNS = (
    "movement",
    "protocol",
    "at",
    "customer",
    "credit_id",
    "reference",
    "type",
    "kind",
    "amount",
    "remaining_after",
    "hold_id",
    "order_ref",
    "channel",
    "store",
    "terminal",
)
HISTORY_COLUMNS = ("protocol", "hold_id", "status", "at", "amount")


def _json(value: Any) -> str:
    return _encode(value).decode()


def _list(value: Any) -> list[Any]:
    """Lua's JSON writes an empty list as {}."""
    return value if isinstance(value, list) else []


def _or_none(value: Any) -> Any:
    return value if value not in ("", None) else None


def _answer(d: dict[str, Any]) -> dict[str, Any]:
    """The answer the script gave, as the client saw it (without the script's own status)."""
    answer = {k: v for k, v in (d.get("answer") or {}).items() if k not in ("s", "replay")}
    if "credits" in answer:
        answer["credits"] = _list(answer["credits"])
    return answer


def _error_body(code: str, protocol: str, **extra: Any) -> dict[str, Any]:
    body = {"code": code, "message": ERRORS[ErrorCode(code)][1], "protocol": protocol}
    body.update({k: v for k, v in extra.items() if v is not None})
    return {"error": body}


class CreditFold:
    """One batch's credit events folded into row changes (a projections.Extension)."""

    def __init__(self) -> None:
        self.credits = Table("credits", ("id",))
        self.holds = Table("credit_holds", ("id",))
        self.parts = Table("credit_hold_parts", ("hold_id", "seq"))
        self.params = Table("order_status_params", ("singleton",))
        self.statuses = Table("order_statuses", ("order_ref", "status"))
        self.history: list[tuple] = []
        self.movements: list[tuple] = []
        self.decisions: list[tuple] = []

    def add(self, e: Event) -> None:
        handler = getattr(self, "_" + e.type.replace(".", "_"), None)
        if handler is not None and e.type.split(".")[0] in ("credit", "order"):
            handler(e, e.data)

    # -- helpers --------------------------------------------------------------------------------
    def _remaining(self, parts: list[dict[str, Any]]) -> None:
        for p in parts:
            self.credits.put((p["credit"],), {"remaining": int(p["remaining"])})

    def _movement(self, e: Event, i: int, customer: str, p: dict[str, Any], kind: str, amount: int, d: dict) -> None:
        self.movements.append(
            (
                f"{e.protocol}.{i}",
                e.protocol,
                e.at,
                customer,
                p["credit"],
                p["reference"],
                p["type"],
                kind,
                amount,
                int(p["remaining"]),
                d.get("id"),
                _or_none(d.get("order")),
                _or_none(d.get("channel")),
                _or_none(d.get("store")),
                _or_none(d.get("terminal")),
            )
        )

    def _decision(
        self,
        e: Event,
        kind: str,
        status: int | None,
        customer: str | None,
        request: dict[str, Any],
        answer: dict[str, Any],
        error: str | None = None,
    ) -> None:
        outcome = "DECLINED" if error else "APPROVED"
        row = (e.protocol, e.at, kind, outcome, status, error, None, customer, None, _json(request), _json(answer))
        self.decisions.append(row)

    def _declined(self, e: Event, kind: str, code: str, customer: str | None, request: dict, **extra: Any) -> None:
        status = ERRORS[ErrorCode(code)][0]
        self._decision(e, kind, status, customer, request, _error_body(code, e.protocol, **extra), code)

    def _ended(self, e: Event, d: dict[str, Any], status: str) -> None:
        cols: dict[str, Any] = {"status": status, "ended_at": e.at}
        if status in ("CANCELLED", "REVERSED"):
            cols["cancel_reason"] = _or_none(d.get("reason"))
            cols["cancel_result"] = _json(_answer(d))
        self.holds.put((d["id"],), cols)
        self.history.append((e.protocol, d["id"], status, e.at, int(d["amount"])))
        self._remaining(_list(d.get("parts")))

    # -- credits --------------------------------------------------------------------------------
    def _credit_created(self, e: Event, d: dict[str, Any]) -> None:
        c = d["credit"]
        row = {
            "customer": c["customer"],
            "reference": c["ref"],
            "type": c["type"],
            "amount": int(c["amount"]),
            "remaining": int(c["remaining"]),
            "channel": c["channel"],
            "store": _or_none(c.get("store")),
            "terminal": _or_none(c.get("terminal")),
            "order_ref": _or_none(c.get("order")),
            "expires_at": ms(c.get("expires_at")),
            "seq": int(c["seq"]),
            "fingerprint": c["fp"],
            "api_key_id": d.get("api_key") or "",
            "protocol": e.protocol,
            "created_at": e.at,
        }
        self.credits.put((c["id"],), row, full=True)
        part = {"credit": c["id"], "reference": c["ref"], "type": c["type"], "remaining": c["amount"]}
        origin = {
            "order": c.get("order"),
            "channel": c["channel"],
            "store": c.get("store"),
            "terminal": c.get("terminal"),
        }
        self._movement(e, 0, c["customer"], part, "CREDIT", int(c["amount"]), origin)
        request = {"customer": c["customer"], "reference": c["ref"], "type": c["type"], "amount": c["amount"]}
        answer = {"id": c["id"], "customer": c["customer"], "reference": c["ref"], "protocol": e.protocol}
        self._decision(e, "credit.create", 201, c["customer"], request, answer)

    # -- holds ----------------------------------------------------------------------------------
    @staticmethod
    def _hold_request(d: dict[str, Any]) -> dict[str, Any]:
        request = {k: d.get(k) for k in ("customer", "amount", "order", "channel")}
        for k in ("store", "terminal"):
            if d.get(k):
                request[k] = d[k]
        request["api_key_id"] = d.get("api_key")
        return request

    def _credit_held(self, e: Event, d: dict[str, Any]) -> None:
        parts = _list(d.get("parts"))
        answer = _answer(d)
        answer["expires_at"] = rfc3339(int(d["expires_at"]))
        row = {
            "customer": d["customer"],
            "amount": int(d["amount"]),
            "status": "PENDING",
            "order_ref": d["order"],
            "channel": d["channel"],
            "store": _or_none(d.get("store")),
            "terminal": _or_none(d.get("terminal")),
            "api_key_id": d.get("api_key") or "",
            "idem": _or_none(d.get("idem")),
            "fingerprint": _or_none(d.get("fp")),
            "protocol": e.protocol,
            "created_at": e.at,
            "expires_at": ms(d["expires_at"]),
            "answer": _json(answer),
        }
        self.holds.put((d["id"],), row, full=True)
        for i, p in enumerate(parts, start=1):
            self.parts.put((d["id"], i), {"credit_id": p["credit"], "held": int(p["amount"]), "committed": None}, True)
        self._remaining(parts)
        self.history.append((e.protocol, d["id"], "PENDING", e.at, int(d["amount"])))
        self._decision(e, "credit.hold", 201, d["customer"], self._hold_request(d), answer)

    def _credit_declined(self, e: Event, d: dict[str, Any]) -> None:
        request = self._hold_request(d)
        self._declined(e, "credit.hold", d["error"], d["customer"], request, available=d.get("available"))

    def _credit_committed(self, e: Event, d: dict[str, Any]) -> None:
        parts = _list(d.get("parts"))
        answer = _answer(d)
        self.holds.put(
            (d["id"],),
            {
                "status": "COMMITTED",
                "committed_amount": int(d["amount"]),
                "coupon": d["coupon"],
                "committed_at": e.at,
                "ended_at": e.at,
                "commit_result": _json(answer),
            },
        )
        for i, p in enumerate(parts, start=1):
            self.parts.put((d["id"], i), {"committed": int(p["amount"])})
            if int(p["amount"]):
                self._movement(e, i, d["customer"], p, "DEBIT", -int(p["amount"]), d)
        self._remaining(parts)
        self.history.append((e.protocol, d["id"], "COMMITTED", e.at, int(d["amount"])))
        request = {"id": d["id"], "coupon": d["coupon"], "amount": d["amount"]}
        self._decision(e, "credit.commit", 200, d["customer"], request, answer)

    def _credit_commit_refused(self, e: Event, d: dict[str, Any]) -> None:
        amount = d.get("amount")
        request = {"id": d["id"], "coupon": d.get("coupon"), "amount": int(amount) if amount else None}
        self._declined(e, "credit.commit", d["error"], d.get("customer"), request, status=d.get("status"))

    def _credit_cancelled(self, e: Event, d: dict[str, Any]) -> None:
        self._ended(e, d, "CANCELLED")
        request = {"id": d["id"], "reason": d.get("reason") or None}
        self._decision(e, "credit.cancel", 200, d["customer"], request, _answer(d))

    def _credit_reversed(self, e: Event, d: dict[str, Any]) -> None:
        self._ended(e, d, "REVERSED")
        for i, p in enumerate(_list(d.get("parts")), start=1):
            self._movement(e, i, d["customer"], p, "RETURN", int(p["amount"]), d)
        request = {"id": d["id"], "reason": d.get("reason") or None}
        self._decision(e, "credit.cancel", 200, d["customer"], request, _answer(d))

    def _credit_cancel_refused(self, e: Event, d: dict[str, Any]) -> None:
        self._declined(e, "credit.cancel", d["error"], d.get("customer"), {"id": d["id"]}, status=d.get("status"))

    def _credit_expired(self, e: Event, d: dict[str, Any]) -> None:
        self._ended(e, d, "EXPIRED")
        trigger = d.get("trigger", "sweeper")
        if trigger in ("commit", "cancel"):  # the request that found it overdue was refused
            request = {"id": d["id"]}
            self._declined(e, f"credit.{trigger}", "CREDIT_HOLD_NOT_PENDING", d["customer"], request, status="EXPIRED")
        else:
            answer = {"id": d["id"], "status": "EXPIRED", "amount": d["amount"], "protocol": e.protocol}
            self._decision(e, "credit.expire", None, d["customer"], {"id": d["id"]}, answer)

    # -- the order-status integration -------------------------------------------------------------
    def _order_status_params_set(self, e: Event, d: dict[str, Any]) -> None:
        row = {
            "commit_statuses": d["commit"],
            "cancel_statuses": d["cancel"],
            "update_balance": d["update_balance"] == "1",
            "updated_at": e.at,
            "updated_by": d.get("by") or "",
        }
        self.params.put((True,), row, full=True)

    def _order_status_processed(self, e: Event, d: dict[str, Any]) -> None:
        report = json.loads(d["report"])
        row = {
            "action": report["action"],
            "update_balance": bool(report["update_balance"]),
            "report": d["report"],
            "protocol": e.protocol,
            "at": e.at,
        }
        self.statuses.put((d["order"], d["status"]), row, full=True)

    # -- writing --------------------------------------------------------------------------------
    async def write(self, conn: asyncpg.Connection) -> None:
        for table in (self.credits, self.holds, self.parts, self.params, self.statuses):
            if table.rows or table.deleted:
                await table.write(conn)
        if self.history:
            await conn.copy_records_to_table("credit_hold_history", records=self.history, columns=HISTORY_COLUMNS)
        if self.movements:
            await conn.copy_records_to_table("credit_movements", records=self.movements, columns=MOVEMENT_COLUMNS)
        if self.decisions:
            await conn.copy_records_to_table("decisions", records=self.decisions, columns=DECISION_COLUMNS)


projections.EXTENSIONS.append(CreditFold)


# --- Redis from the ledger, and drift between them ---------------------------------------------
CREDITS_SQL = "SELECT * FROM credits ORDER BY customer, seq"
LIVE_HOLDS_SQL = "SELECT * FROM credit_holds WHERE status = 'PENDING' OR ended_at > $1"
PARTS_SQL = """SELECT hold_id, seq, credit_id, held, committed FROM credit_hold_parts
               WHERE hold_id = ANY($1::text[]) ORDER BY hold_id, seq"""
HISTORY_SQL = """SELECT hold_id, status, at, protocol, amount FROM credit_hold_history
                 WHERE hold_id = ANY($1::text[]) ORDER BY seq"""
ANSWERS_SQL = """SELECT at, data FROM journal WHERE type IN ('credit.held', 'credit.declined') AND at > $1
                 ORDER BY at"""
PARAMS_SQL = "SELECT * FROM order_status_params"
REPORTS_SQL = "SELECT order_ref, status, report::text AS report, at FROM order_statuses WHERE at > $1"
STORED_REMAINING_SQL = "SELECT customer, id, reference, remaining FROM credits"
STORED_PENDING_SQL = "SELECT id, customer, amount FROM credit_holds WHERE status = 'PENDING'"


def _ms(value: datetime.datetime | None) -> int:
    return 0 if value is None else int(value.timestamp() * 1000)


def _since(now: int, ttl_s: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp((now - ttl_s * 1000) / 1000, datetime.UTC)


async def restore(gw: Gateway, conn: asyncpg.Connection) -> dict[str, int]:
    """Put back into an emptied Redis, from the ledger: every customer's credits (remaining,
    references, open set), the credit holds still PENDING (and final ones still within their
    time in Redis, so a retried commit or cancel replays, and a return can still reverse), the
    orders' indexes of them, the credit holds' idempotency answers within their window, and the
    order-status parameters and kept reports. `convenio rebuild` runs it after its own part."""
    k, s = gw.keys, gw.settings
    now = gw.now_ms()
    counts = {"credits": 0, "pending credit holds": 0, "final credit holds": 0, "credit idempotency answers": 0}
    pipe = gw.redis.pipeline(transaction=False)
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
            "expires_at": _ms(r["expires_at"]),
            "created_at": _ms(r["created_at"]),
            "seq": r["seq"],
            "protocol": r["protocol"],
            "fp": r["fingerprint"],
        }
        pipe.hset(k.credits(r["customer"]), r["id"], json.dumps(rec))
        pipe.hset(k.credit_refs(r["customer"]), r["reference"], r["id"])
        if r["remaining"] > 0:
            pipe.sadd(k.credits_open(r["customer"]), r["id"])
        counts["credits"] += 1

    holds = await conn.fetch(LIVE_HOLDS_SQL, _since(now, s.final_empenho_ttl_s))
    ids = [h["id"] for h in holds]
    parts: dict[str, list[dict[str, Any]]] = {}
    for p in await conn.fetch(PARTS_SQL, ids):
        part = {"c": p["credit_id"], "h": p["held"]}
        if p["committed"] is not None:
            part["k"] = p["committed"]
        parts.setdefault(p["hold_id"], []).append(part)
    history: dict[str, list[dict[str, Any]]] = {}
    for e in await conn.fetch(HISTORY_SQL, ids):
        entry = {"status": e["status"], "at": _ms(e["at"]), "protocol": e["protocol"], "amount": e["amount"]}
        history.setdefault(e["hold_id"], []).append(entry)
    for h in holds:
        shard = hold_shard(h["id"], s.shards)
        if shard is None:
            continue
        fields: dict[str, Any] = {
            "id": h["id"],
            "customer": h["customer"],
            "amount": h["amount"],
            "status": h["status"],
            "order": h["order_ref"],
            "channel": h["channel"],
            "store": h["store"] or "",
            "terminal": h["terminal"] or "",
            "created_at": _ms(h["created_at"]),
            "expires_at": _ms(h["expires_at"]),
            "protocol": h["protocol"],
            "api_key": h["api_key_id"],
            "parts": json.dumps(parts.get(h["id"], [])),
            "history": json.dumps(history.get(h["id"], [])),
        }
        if h["committed_amount"] is not None:
            fields.update(committed_amount=h["committed_amount"], coupon=h["coupon"], commit_result=h["commit_result"])
        if h["ended_at"] is not None:
            fields["ended_at"] = _ms(h["ended_at"])
        if h["cancel_result"] is not None:
            fields.update(cancel_reason=h["cancel_reason"] or "", cancel_result=h["cancel_result"])
        key = k.credit_hold(shard, h["id"])
        pipe.hset(key, mapping=fields)
        index = k.order_holds(h["order_ref"])
        pipe.sadd(index, h["id"])
        pipe.expire(index, s.hold_ttl_s + s.final_empenho_ttl_s)
        if h["status"] == "PENDING":
            pipe.zadd(k.credit_pending(shard), {h["id"]: _ms(h["expires_at"])})
            counts["pending credit holds"] += 1
        else:
            pipe.expire(key, max(1, (_ms(h["ended_at"]) + s.final_empenho_ttl_s * 1000 - now) // 1000))
            counts["final credit holds"] += 1

    for r in await conn.fetch(ANSWERS_SQL, _since(now, s.idempotency_ttl_s)):
        d = json.loads(r["data"])
        ttl = max(1, (_ms(r["at"]) + s.idempotency_ttl_s * 1000 - now) // 1000)
        record = json.dumps({"fp": d["fp"], "r": d["answer"]})
        pipe.set(k.credit_idempotency(d["customer"], d["api_key"], d["idem"]), record, ex=ttl)
        pipe.set(k.idempotency_claim(d["api_key"], d["idem"]), d["fp"], ex=ttl)
        counts["credit idempotency answers"] += 1

    for p in await conn.fetch(PARAMS_SQL):
        mapping = {
            "commit": p["commit_statuses"],
            "cancel": p["cancel_statuses"],
            "update_balance": "1" if p["update_balance"] else "0",
            "updated_at": _ms(p["updated_at"]),
            "by": p["updated_by"],
        }
        pipe.hset(k.order_status_params(), mapping=mapping)
    for r in await conn.fetch(REPORTS_SQL, _since(now, s.idempotency_ttl_s)):
        key = k.order_status_results(r["order_ref"])
        pipe.hset(key, r["status"], r["report"])
        pipe.expire(key, max(1, (_ms(r["at"]) + s.idempotency_ttl_s * 1000 - now) // 1000))
    await pipe.execute()
    return counts


async def drift(gw: Gateway, conn: asyncpg.Connection) -> list[str]:
    """Every difference between Redis and the ledger: each credit's remaining, and which credit
    holds are PENDING (run it once the writer has caught up). Empty: no drift."""
    k = gw.keys
    live: dict[tuple[str, str], tuple[str, int]] = {}
    async for raw in gw.redis.scan_iter(match=f"{k.prefix}:{{s*}}:ccr:*", count=1000):
        for value in (await gw.redis.hgetall(raw)).values():
            rec = json.loads(value)
            live[(rec["customer"], rec["id"])] = (rec["ref"], rec["remaining"])
    rows = await conn.fetch(STORED_REMAINING_SQL)
    stored = {(r["customer"], r["id"]): (r["reference"], r["remaining"]) for r in rows}
    lines = []
    for key in sorted(set(live) | set(stored)):
        a, b = live.get(key), stored.get(key)
        if a != b:
            ref = (a or b or ("?", 0))[0]
            lines.append(
                f"DRIFT credit {key[0]}/{key[1]} ({ref}): remaining: redis {a[1] if a else '—'}, "
                f"postgres {b[1] if b else '—'}"
            )
    pending_live: dict[str, int] = {}
    for shard in range(gw.settings.shards):
        for raw in await gw.redis.zrange(k.credit_pending(shard), 0, -1):
            status, amount = await gw.redis.hmget(k.credit_hold(shard, raw.decode()), "status", "amount")
            if status == b"PENDING":
                pending_live[raw.decode()] = int(amount)
    pending_stored = {r["id"]: r["amount"] for r in await conn.fetch(STORED_PENDING_SQL)}
    for hold_id in sorted(set(pending_live) ^ set(pending_stored)):
        where = "redis" if hold_id in pending_live else "postgres"
        lines.append(f"DRIFT credit hold {hold_id}: PENDING in {where} only")
    return lines
