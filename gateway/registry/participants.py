"""Participants of a convênio: created and updated through participant_save.lua (the allocation
rule, a limit change moving the balance by the same difference, a new password hash), read
straight from their hashes, listed a page at a time."""

from __future__ import annotations

import msgspec

from gateway.platform.clock import rfc3339
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.services import Services
from gateway.registry.convenios import checked, window_fields, windows_view
from gateway.registry.schemas import ParticipantCreate, ParticipantList, ParticipantUpdate, ParticipantView


def _participant_view(convenio: str, code: str, r: dict[str, str]) -> ParticipantView:
    return ParticipantView(
        convenio=convenio,
        code=code,
        name=r.get("name", ""),
        document=r.get("document", ""),
        limit=int(r.get("limit", 0)),
        balance=int(r.get("balance", 0)),
        reserved=int(r.get("reserved", 0)),
        status=r["status"],
        password_set=bool(r.get("pw_changed_at") or r.get("pw_hash")),
        windows=windows_view(r),
        created_at=rfc3339(int(r["created_at"])),
        updated_at=rfc3339(int(r["updated_at"])),
    )


async def save_participant(
    svc: Services,
    convenio: str,
    code: str,
    body: ParticipantCreate | ParticipantUpdate,
    by: str = "",
    reason: str | None = None,
) -> ParticipantView:
    """Create or update a participant; `by` (who) and the body's or the caller's reason (why)
    go into the event, for the change history."""
    k = svc.keys
    create = isinstance(body, ParticipantCreate)
    f: dict[str, str] = {}
    for name in ("name", "document", "status"):
        value = getattr(body, name)
        if value is not None:
            f[name] = value
    if body.limit is not None:
        f["limit"] = str(body.limit)
    if body.windows is not None:
        f.update(window_fields(body.windows))
    if body.password is not None:
        f["pw_hash"] = await svc.passwords.hash(body.password)
    res = await svc.run(
        "participant_save",
        [k.convenio(convenio), k.participant(convenio, code), k.members(convenio), k.events(k.shard_of(convenio))],
        [
            "create" if create else "update",
            svc.now_ms(),
            svc.protocol(),
            convenio,
            code,
            msgspec.json.encode(f),
            by,
            reason or getattr(body, "reason", None) or "",
        ],
    )
    record = checked(res)
    # The cross-convênio index is a separate key (another hash slot); SADD is idempotent, and
    # readers skip entries whose participant is gone, so a crash between the two is harmless.
    await svc.run("pconv_add", [k.participant_convenios(code)], [code, convenio])
    return _participant_view(convenio, code, record)


async def get_participant(svc: Services, convenio: str, code: str) -> ParticipantView:
    raw = await svc.redis.hgetall(svc.keys.participant(convenio, code))
    if not raw:
        if not await svc.redis.exists(svc.keys.convenio(convenio)):
            raise ApiError(ErrorCode.UNKNOWN_CONVENIO)
        raise ApiError(ErrorCode.UNKNOWN_PARTICIPANT)
    return _participant_view(convenio, code, {k.decode(): v.decode() for k, v in raw.items()})


async def list_participants(svc: Services, convenio: str, after: str, limit: int) -> ParticipantList:
    if not await svc.redis.exists(svc.keys.convenio(convenio)):
        raise ApiError(ErrorCode.UNKNOWN_CONVENIO)
    codes = sorted(c.decode() for c in await svc.redis.smembers(svc.keys.members(convenio)))
    page = [c for c in codes if c > after][:limit]
    async with svc.redis.pipeline(transaction=False) as pipe:
        for c in page:
            pipe.hgetall(svc.keys.participant(convenio, c))
        rows = await pipe.execute()
    views = [
        _participant_view(convenio, c, {k.decode(): v.decode() for k, v in r.items()})
        for c, r in zip(page, rows, strict=True)
        if r
    ]
    more = len(page) == limit and page and codes[-1] != page[-1]
    return ParticipantList(participants=views, next_after=page[-1] if more else None)
