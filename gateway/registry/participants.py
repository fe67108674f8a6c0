"""Participants of a convênio: created and updated through participant_save.lua (the allocation
rule, a limit change moving the balance by the same difference, a new password hash), read
straight from their hashes, listed a page at a time, found by their document. A document reaches
the script only as its digest, sealed copy and mask (gateway/platform/documents.py)."""

from __future__ import annotations

import logging

import msgspec

from gateway.platform import documents
from gateway.platform.clock import rfc3339
from gateway.platform.config import MissingDataKey
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.services import Services
from gateway.registry import convenios
from gateway.registry.convenios import checked, window_fields, windows_view
from gateway.registry.schemas import (
    ParticipantCreate,
    ParticipantList,
    ParticipantMatches,
    ParticipantPage,
    ParticipantUpdate,
    ParticipantView,
)

log = logging.getLogger("convenio.registry")

#: the participants holding a document, from the ledger's projection (at most one per convênio)
BY_DIGEST = """
SELECT convenio, participant FROM participants WHERE document_digest = $1 ORDER BY convenio, participant LIMIT 1000"""


def _participant_view(convenio: str, code: str, r: dict[str, str]) -> ParticipantView:
    return ParticipantView(
        convenio=convenio,
        code=code,
        name=r.get("name", ""),
        document=r.get("doc_masked", ""),
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
    for name in ("name", "status"):
        value = getattr(body, name)
        if value is not None:
            f[name] = value
    if body.document is not None:
        f.update(document_fields(svc, body.document))
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


def checked_document(raw: str) -> str:
    """The normalized document, or 422 INVALID_REQUEST naming `document` (never its value)."""
    try:
        return documents.checked(raw)
    except documents.InvalidDocument as exc:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"`document` is {exc}.", field="document") from None


def _sealer(svc: Services) -> documents.Sealer:
    try:
        return documents.sealer(svc.settings)
    except MissingDataKey as exc:  # a deployment without the key takes no document, saying why
        log.error("%s", exc)
        raise ApiError(ErrorCode.SERVICE_UNAVAILABLE, "Documents cannot be stored or searched: " + str(exc)) from None


def document_fields(svc: Services, raw: str) -> dict[str, str]:
    """What the participant's hash keeps of a document: digest, sealed copy and mask ("" clears)."""
    if raw == "":
        return dict.fromkeys(documents.FIELDS, "")
    doc = checked_document(raw)
    return _sealer(svc).fields(doc)


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


async def search(svc: Services, raw: str) -> ParticipantMatches:
    """The customer with this document in every convênio: found by digest in the ledger's
    projection, then read live from Redis (and skipped where Redis says the document changed)."""
    doc = checked_document(raw)
    digest = _sealer(svc).digest(doc)
    rows = await svc.ledger.fetch(BY_DIGEST, digest)
    async with svc.redis.pipeline(transaction=False) as pipe:
        for r in rows:
            pipe.hgetall(svc.keys.participant(r["convenio"], r["participant"]))
        found = await pipe.execute()
    views = []
    for r, raw_hash in zip(rows, found, strict=True):
        record = {k.decode(): v.decode() for k, v in raw_hash.items()}
        if record.get("doc_digest") == digest:
            views.append(_participant_view(r["convenio"], r["participant"], record))
    return ParticipantMatches(participants=views)


async def erase_personal(svc: Services, convenio: str, code: str, pseudonym: str, by: str) -> bool:
    """Replace the participant's name by a pseudonym and remove its document and password hash
    (one participant.updated event, whose record holds neither); False when Redis has no such
    participant. The amounts stay as they are."""
    k = svc.keys
    fields = {"name": pseudonym, "pw_hash": "", **dict.fromkeys(documents.FIELDS, "")}
    res = await svc.run(
        "participant_save",
        [k.convenio(convenio), k.participant(convenio, code), k.members(convenio), k.events(k.shard_of(convenio))],
        ["update", svc.now_ms(), svc.protocol(), convenio, code, msgspec.json.encode(fields), by, "privacy erasure"],
    )
    if not res.get("ok"):
        if res.get("code") in (ErrorCode.UNKNOWN_PARTICIPANT, ErrorCode.UNKNOWN_CONVENIO):
            return False
        checked(res)
    return True


_FOUND = """
SELECT convenio, participant, record::text AS record FROM participants
WHERE ($1::text IS NULL OR lower(participant) LIKE $1 ESCAPE '\\'
       OR lower(translate(name, 'ÁÀÂÃÄÅáàâãäåÉÈÊËéèêëÍÌÎÏíìîïÓÒÔÕÖóòôõöÚÙÛÜúùûüÇçÑñ',
                                'AAAAAAaaaaaaEEEEeeeeIIIIiiiiOOOOOoooooUUUUuuuuCcNn')) LIKE $1 ESCAPE '\\')
  AND ($2::text IS NULL OR convenio = $2)
  AND ($3::text IS NULL OR status = $3)
  AND ($4::text IS NULL OR (participant, convenio) > ($4::text, $5::text))
ORDER BY participant, convenio
LIMIT $6"""


async def find_participants(
    svc: Services,
    q: str | None = None,
    convenio: str | None = None,
    status: str | None = None,
    after: tuple[str, str] | None = None,
    limit: int = 100,
) -> ParticipantPage:
    """Participants of every convênio (or of one) whose code or name contains q (case and accents
    aside), in this status, by participant code then convênio, a page at a time (`after`: the
    (participant, convênio) the previous page ended with; over HTTP, its next_after). A document
    is searched with participants.search, never here: it would travel in a URL."""
    if convenio is not None and not await svc.redis.exists(svc.keys.convenio(convenio)):
        raise ApiError(ErrorCode.UNKNOWN_CONVENIO)
    last, last_convenio = after or (None, None)
    rows = await svc.ledger.fetch(_FOUND, convenios.contains(q), convenio, status, last, last_convenio, limit + 1)
    page_rows = rows[:limit]
    keys = [svc.keys.participant(r["convenio"], r["participant"]) for r in page_rows]
    records = await convenios.live(svc, keys, [r["record"] for r in page_rows])
    views = [
        _participant_view(r["convenio"], r["participant"], record) for r, record in zip(page_rows, records, strict=True)
    ]
    page = ParticipantPage(participants=views)
    if len(rows) > limit:
        page.next_after = f"{views[-1].code}/{views[-1].convenio}"
    return page
