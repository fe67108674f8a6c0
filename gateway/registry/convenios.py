"""Convênios in the registry: created and updated through convenio_save.lua (which enforces the
allocation rule and moves a shared pool's balance), read straight from their hashes. Values cross
into Lua as strings."""

from __future__ import annotations

import unicodedata
from typing import Any

import msgspec

from gateway.platform.clock import rfc3339
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.services import Services
from gateway.registry.schemas import (
    Billing,
    ConvenioCreate,
    ConvenioPage,
    ConvenioUpdate,
    ConvenioView,
    Rollover,
    Windows,
)

#: the statuses a convênio or participant may be in (the system sets BLOCKED_OVERDUE)
STATUSES = ("ACTIVE", "BLOCKED", "BLOCKED_CREDIT", "BLOCKED_OVERDUE")
#: how the convênios are listed: by code, or newest first
ORDERS = ("code", "newest")

# A search matches the code or the name, case and accents aside: the name is folded in SQL the way
# `folded` folds the text searched (Postgres's lower() alone leaves accented capitals under a C
# locale, and unaccent is an extension a deployment may not have). Filters read the ledger's
# projection; the records shown are then read live from Redis (see _live).
_BY_CODE = """
SELECT code, record::text AS record FROM convenios
WHERE ($1::text IS NULL OR lower(code) LIKE $1 ESCAPE '\\'
       OR lower(translate(name, 'ÁÀÂÃÄÅáàâãäåÉÈÊËéèêëÍÌÎÏíìîïÓÒÔÕÖóòôõöÚÙÛÜúùûüÇçÑñ',
                                'AAAAAAaaaaaaEEEEeeeeIIIIiiiiOOOOOoooooUUUUuuuuCcNn')) LIKE $1 ESCAPE '\\')
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR code > $3)
ORDER BY code
LIMIT $4"""
# newest first; a page continues after the previous page's last code in that order
_NEWEST = """
SELECT code, record::text AS record FROM convenios
WHERE ($1::text IS NULL OR lower(code) LIKE $1 ESCAPE '\\'
       OR lower(translate(name, 'ÁÀÂÃÄÅáàâãäåÉÈÊËéèêëÍÌÎÏíìîïÓÒÔÕÖóòôõöÚÙÛÜúùûüÇçÑñ',
                                'AAAAAAaaaaaaEEEEeeeeIIIIiiiiOOOOOoooooUUUUuuuuCcNn')) LIKE $1 ESCAPE '\\')
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR (created_at, code) < (SELECT created_at, code FROM convenios WHERE code = $3))
ORDER BY created_at DESC, code DESC
LIMIT $4"""
# by participant code, then convênio: a customer's places in several convênios come together


def flag(value: bool) -> str:
    return "1" if value else "0"


def _convenio_fields(body: ConvenioCreate | ConvenioUpdate) -> dict[str, str]:
    f: dict[str, str] = {}
    if body.name is not None:
        f["name"] = body.name
    if body.total_limit is not None:
        f["total_limit"] = str(body.total_limit)
    if body.tolerance is not None:
        f["tolerance"] = str(body.tolerance)
    if body.shared is not None:
        f["shared"] = flag(body.shared)
    if body.rollover is not None:
        f["rollover_policy"] = body.rollover.policy
        f["rollover_day"] = str(body.rollover.day or "")
    if body.billing is not None:
        f["billing_automatic"] = flag(body.billing.automatic)
        f["billing_period"] = body.billing.period
        f["billing_in_participant_name"] = flag(body.billing.in_participant_name)
        f["payment_method"] = body.billing.payment_method
        f["billing_due_days"] = str(body.billing.due_days)
        f["billing_block_after_days"] = str(body.billing.block_after_days)
    if body.requires_vehicle is not None:
        f["requires_vehicle"] = flag(body.requires_vehicle)
    if body.status is not None:
        f["status"] = body.status
    if body.windows is not None:
        f.update(window_fields(body.windows))
    if body.stores is not None:
        # as empenho_hold.lua finds a store in it: ",L001,L002,"; "" for every store
        f["stores"] = "," + ",".join(sorted(set(body.stores))) + "," if body.stores else ""
    if body.time_zone is not None:
        f["time_zone"] = body.time_zone
    return f


def window_fields(w: Windows) -> dict[str, str]:
    """'' means no cap (empenho_hold.lua reads it as nil)."""
    return {
        "w_order": "" if w.order_max is None else str(w.order_max),
        "w_day": "" if w.daily_max is None else str(w.daily_max),
        "w_month": "" if w.monthly_max is None else str(w.monthly_max),
    }


def windows_view(r: dict[str, str]) -> Windows:
    def cap(name: str) -> int | None:
        v = r.get(name) or ""
        return int(v) if v else None

    return Windows(order_max=cap("w_order"), daily_max=cap("w_day"), monthly_max=cap("w_month"))


def _convenio_view(r: dict[str, str]) -> ConvenioView:
    day = r.get("rollover_day", "")
    return ConvenioView(
        code=r["code"],
        name=r["name"],
        total_limit=int(r["total_limit"]),
        tolerance=int(r.get("tolerance", 0)),
        shared=r.get("shared") == "1",
        rollover=Rollover(policy=r.get("rollover_policy", "MONTHLY"), day=int(day) if day else None),
        billing=Billing(
            automatic=r.get("billing_automatic") == "1",
            period=r.get("billing_period", "MONTHLY"),
            in_participant_name=r.get("billing_in_participant_name") == "1",
            payment_method=r.get("payment_method", "BOLETO"),
            due_days=int(r.get("billing_due_days") or 10),
            block_after_days=int(r.get("billing_block_after_days") or 5),
        ),
        requires_vehicle=r.get("requires_vehicle") == "1",
        status=r["status"],
        windows=windows_view(r),
        allocated=int(r.get("allocated", 0)),
        balance=int(r.get("balance", 0)),
        reserved=int(r.get("reserved", 0)),
        created_at=rfc3339(int(r["created_at"])),
        updated_at=rfc3339(int(r["updated_at"])),
        stores=[code for code in r.get("stores", "").split(",") if code],
        time_zone=r.get("time_zone") or "America/Sao_Paulo",
    )


def checked(res: dict[str, Any]) -> dict[str, Any]:
    if not res["ok"]:
        raise ApiError(res["code"], **res["x"])
    return res["r"]


async def save_convenio(
    svc: Services, code: str, body: ConvenioCreate | ConvenioUpdate, by: str = "", reason: str | None = None
) -> ConvenioView:
    k = svc.keys
    create = isinstance(body, ConvenioCreate)
    # a monthly rollover always has its day; the 1st unless said otherwise
    if body.rollover is not None and body.rollover.policy == "MONTHLY" and body.rollover.day is None:
        body = msgspec.structs.replace(body, rollover=Rollover(policy="MONTHLY", day=1))
    if body.stores:  # only stores the registry knows
        known = await svc.redis.smismember(k.stores(), list(body.stores))
        unknown = sorted(code for code, found in zip(body.stores, known, strict=True) if not found)
        if unknown:
            raise ApiError(ErrorCode.STORE_NOT_REGISTERED, f"No store with the code {unknown[0]}.", field="stores")
    res = await svc.run(
        "convenio_save",
        [k.convenio(code), k.members(code), k.events(k.shard_of(code))],
        [
            "create" if create else "update",
            svc.now_ms(),
            svc.protocol(),
            code,
            msgspec.json.encode(_convenio_fields(body)),
            by,
            reason or getattr(body, "reason", None) or "",
        ],
    )
    return _convenio_view(checked(res))


async def get_convenio(svc: Services, code: str) -> ConvenioView:
    raw = await svc.redis.hgetall(svc.keys.convenio(code))
    if not raw:
        raise ApiError(ErrorCode.UNKNOWN_CONVENIO)
    return _convenio_view({k.decode(): v.decode() for k, v in raw.items()})


# --- the back office's lists -------------------------------------------------------------------
def folded(text: str) -> str:
    """Text as a search compares it: lower case, without accents."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def contains(q: str | None) -> str | None:
    """The LIKE pattern of "contains q" (folded), its own % and _ taken literally."""
    if q is None:
        return None
    escaped = folded(q).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _decoded(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


def _from_ledger(record: str) -> dict[str, str]:
    return {k: v if isinstance(v, str) else str(v) for k, v in msgspec.json.decode(record).items()}


async def live(svc: Services, keys: list[str], records: list[str]) -> list[dict[str, str]]:
    """Each record as Redis holds it now (the balance and what is reserved change with every
    sale), in one round trip; the ledger's copy where Redis has none (a rebuild pending)."""
    async with svc.redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        found = await pipe.execute()
    return [_decoded(raw) if raw else _from_ledger(rec) for raw, rec in zip(found, records, strict=True)]


async def list_convenios(
    svc: Services,
    q: str | None = None,
    status: str | None = None,
    order: str = "code",
    after: str | None = None,
    limit: int = 100,
) -> ConvenioPage:
    """The convênios whose code or name contains q (case and accents aside), in this status, by
    code or newest first, a page at a time (`after`: the previous page's next_after). Found in
    the ledger's projection, so one created moments ago appears once the ledger has it."""
    if order == "newest":
        rows = await svc.ledger.fetch(_NEWEST, contains(q), status, after, limit + 1)
    else:
        rows = await svc.ledger.fetch(_BY_CODE, contains(q), status, after, limit + 1)
    page_rows = rows[:limit]
    records = await live(svc, [svc.keys.convenio(r["code"]) for r in page_rows], [r["record"] for r in page_rows])
    views = [_convenio_view({"code": r["code"], **record}) for r, record in zip(page_rows, records, strict=True)]
    page = ConvenioPage(convenios=views)
    if len(rows) > limit:
        page.next_after = views[-1].code
    return page
