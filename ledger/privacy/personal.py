"""The export and the erasure of one customer's personal data, across every convênio they take
part in. The customer is their participant code (an internal code, kept); the name becomes a
pseudonym; the document and the password hash go, from Redis, the projections, the decisions,
the audit log's rows about them and the journal's past payloads. Amounts are never touched, so
balances, duplicatas, `convenio verify` and `convenio rebuild` add up as before."""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from gateway.audit.log import record
from gateway.platform import documents
from gateway.platform.services import Services
from gateway.registry import participants
from ledger.writer import writer

#: what is never exported nor kept after an erasure: secrets, and the document's stored forms
SECRET_KEYS = frozenset({"pw_hash", "doc_digest", "doc_sealed", "document_digest", "document_sealed"})
#: what an erasure removes from every stored record (the mask too, and any clear legacy copy)
ERASED_KEYS = SECRET_KEYS | {"doc_masked", "document", "document_masked"}
#: every table but `participants` that keys rows by the customer, and the statement that reads
#: them: constant SQL, checked against the catalogue (tests/test_personal_data.py), so a new
#: table holding customers' rows cannot be left out of the export
HELD: dict[str, str] = {
    "credit_holds": "SELECT * FROM credit_holds WHERE customer = $1",
    "credit_movements": "SELECT * FROM credit_movements WHERE customer = $1",
    "credits": "SELECT * FROM credits WHERE customer = $1",
    "decisions": "SELECT * FROM decisions WHERE participant = $1",
    "duplicata_items": "SELECT * FROM duplicata_items WHERE participant = $1",
    "duplicatas": "SELECT * FROM duplicatas WHERE participant = $1",
    "empenhos": "SELECT * FROM empenhos WHERE participant = $1",
    "limit_requests": "SELECT * FROM limit_requests WHERE participant = $1",
    "movements": "SELECT * FROM movements WHERE participant = $1",
    "receivable_movements": "SELECT * FROM receivable_movements WHERE participant = $1",
    "reconciliation_records": "SELECT * FROM reconciliation_records WHERE participant = $1",
    "registry_history": "SELECT * FROM registry_history WHERE participant = $1",
    "vehicles": "SELECT * FROM vehicles WHERE participant = $1",
}
#: the catalogue's tables keyed by a customer (what HELD must cover)
TABLES_KEYED_BY_CUSTOMER = """
SELECT table_name FROM information_schema.columns
WHERE table_schema = current_schema() AND column_name IN ('participant', 'customer')
  AND table_name NOT IN ('journal', 'audit_log', 'participants')
ORDER BY table_name"""
_PARTICIPANTS = "SELECT * FROM participants WHERE participant = $1 ORDER BY convenio"


class UnknownCustomer(RuntimeError):
    pass


def pseudonym(code: str) -> str:
    """The name an erased customer keeps: stable, and saying nothing about the person."""
    return "TITULAR " + hashlib.sha256(f"convenio-erased:{code}".encode()).hexdigest()[:10].upper()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    return value


def _without(value: Any, keys: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


def _row(r: asyncpg.Record) -> dict[str, Any]:
    out = {}
    for k, v in r.items():
        if k in SECRET_KEYS:
            continue
        if isinstance(v, str) and v[:1] in "{[":
            try:
                v = _without(json.loads(v), SECRET_KEYS)
            except ValueError:
                pass
        out[k] = _plain(v)
    return out


async def export(svc: Services, conn: asyncpg.Connection, code: str, by: str) -> dict[str, Any]:
    """Everything held about the customer, the document decrypted; recorded in the audit log."""
    rows = await conn.fetch(_PARTICIPANTS, code)
    if not rows:
        raise UnknownCustomer(f"no participant with the code {code} in any convênio")
    sealer = documents.sealer(svc.settings) if any(r["document_sealed"] for r in rows) else None
    convenios = []
    for r in rows:
        entry = _row(r)
        entry["document"] = (
            documents.formatted(sealer.open(r["document_sealed"])) if sealer and r["document_sealed"] else ""
        )
        entry["password_set"] = r["pw_hash"] is not None
        try:  # the live figures, where Redis has them
            live = await participants.get_participant(svc, r["convenio"], code)
            entry["live"] = {"balance": live.balance, "reserved": live.reserved, "limit": live.limit}
        except Exception:  # noqa: BLE001 - Redis without it (lost, not rebuilt): the ledger's copy stands
            entry["live"] = None
        convenios.append(entry)
    held: dict[str, Any] = {"customer": code, "convenios": convenios}
    for table, sql in HELD.items():
        held[table] = [_row(f) for f in await conn.fetch(sql, code)]
    held["audit"] = [_row(a) for a in await conn.fetch(_AUDIT_ROWS, *_targets(code, [r["convenio"] for r in rows]))]
    async with conn.transaction():
        sections = {k: len(v) for k, v in held.items() if isinstance(v, list)}
        await record(
            conn, actor=f"cli:{by}", action="privacy.exported", target=f"customer {code}", after={"rows": sections}
        )
    return held


_AUDIT_ROWS = "SELECT * FROM audit_log WHERE target = ANY($1::text[]) ORDER BY seq"


def _targets(code: str, convenios: list[str]) -> tuple[list[str]]:
    return ([f"customer {code}", *(f"participant {c}/{code}" for c in convenios)],)


def _scrubbed(value: Any, names: set[str], alias: str) -> Any:
    """The value without the erased keys, every string equal to an old name as the pseudonym."""
    if isinstance(value, dict):
        return {k: _scrubbed(v, names, alias) for k, v in value.items() if k not in ERASED_KEYS}
    if isinstance(value, list):
        return [_scrubbed(v, names, alias) for v in value]
    if isinstance(value, str) and value in names:
        return alias
    return value


@dataclass(frozen=True)
class Rewrite:
    """The rows of one table holding a customer's past records as JSON: which to read (their key
    and JSON columns, by constant SQL) and how to write one back (key first, then the columns)."""

    select: str
    update: str
    key: tuple[str, ...]
    columns: tuple[str, ...]


REWRITES = {
    "participants": Rewrite(
        "SELECT convenio, participant, record FROM participants WHERE participant = $1",
        "UPDATE participants SET record = $3::jsonb WHERE convenio = $1 AND participant = $2",
        ("convenio", "participant"),
        ("record",),
    ),
    "journal": Rewrite(
        "SELECT protocol, data FROM journal WHERE data->>'participant' = $1 OR data->>'customer' = $1",
        "UPDATE journal SET data = $2::jsonb WHERE protocol = $1",
        ("protocol",),
        ("data",),
    ),
    "decisions": Rewrite(
        "SELECT protocol, request, answer FROM decisions WHERE participant = $1",
        "UPDATE decisions SET request = $2::jsonb, answer = $3::jsonb WHERE protocol = $1",
        ("protocol",),
        ("request", "answer"),
    ),
    "audit_log": Rewrite(
        "SELECT protocol, before, after FROM audit_log WHERE target = ANY($1::text[])",
        "UPDATE audit_log SET before = $2::jsonb, after = $3::jsonb WHERE protocol = $1",
        ("protocol",),
        ("before", "after"),
    ),
}


async def _scrub_json(conn: asyncpg.Connection, rewrite: Rewrite, match: Any, names: set[str], alias: str) -> int:
    """Rewrite the JSON columns of the rows `match` selects; returns how many changed."""
    changed = 0
    for r in await conn.fetch(rewrite.select, match):
        values, dirty = [], False
        for c in rewrite.columns:
            if r[c] is None:
                values.append(None)
                continue
            old = json.loads(r[c])
            clean = _scrubbed(old, names, alias)
            dirty = dirty or clean != old
            values.append(json.dumps(clean, ensure_ascii=False))
        if dirty:
            await conn.execute(rewrite.update, *(r[k] for k in rewrite.key), *values)
            changed += 1
    return changed


async def erase(svc: Services, conn: asyncpg.Connection, code: str, by: str) -> dict[str, Any]:
    """Erase the customer's name, document and password hash everywhere; keep every amount.
    Safe to repeat (a run cut short is finished by the next)."""
    rows = await conn.fetch(_PARTICIPANTS, code)
    listed = await svc.redis.hget(svc.keys.participant_convenios(code), code)
    convenios = sorted({r["convenio"] for r in rows} | set(listed.decode().split(",") if listed else ()))
    if not convenios:
        raise UnknownCustomer(f"no participant with the code {code} in any convênio")
    alias = pseudonym(code)
    names = {r["name"] for r in rows if r["name"] and r["name"] != alias}
    for c in convenios:
        name = await svc.redis.hget(svc.keys.participant(c, code), "name")
        if name and name.decode() != alias:
            names.add(name.decode())
    before = {
        "convenios": convenios,
        "had_document": any(r["document_digest"] or r["document_masked"] for r in rows),
        "had_password": any(r["pw_hash"] for r in rows),
    }
    # Redis first, through the registry's script: its event carries only the pseudonym
    erased_live = [c for c in convenios if await participants.erase_personal(svc, c, code, alias, f"cli:{by}")]
    # every event written before it is then in the journal, so the rewrite below misses none,
    # and the streams no longer hold them (a Redis dump neither)
    await writer.drain(svc, svc.settings.database_url)
    for shard in {svc.keys.shard_of(c) for c in convenios}:
        await svc.run("ledger_trim", [svc.keys.events(shard)], [writer.GROUP])
    async with conn.transaction():
        await conn.execute(
            """UPDATE participants SET name = $2, document_digest = NULL, document_sealed = NULL,
                   document_masked = '', pw_hash = NULL WHERE participant = $1""",
            code,
            alias,
        )
        targets = _targets(code, convenios)[0]
        counts = {
            table: await _scrub_json(conn, rewrite, targets if table == "audit_log" else code, names, alias)
            for table, rewrite in REWRITES.items()
        }
        await record(
            conn,
            actor=f"cli:{by}",
            action="privacy.erased",
            target=f"customer {code}",
            before=before,
            after={"name": alias, "redis": erased_live, "rewritten": counts},
        )
    return {"customer": code, "pseudonym": alias, "convenios": convenios, "rewritten": counts}
