"""The back office's endpoint of the audit log: GET /v1/audit, for administrators only (it shows
who did what with every key and record; the registry's readers have their own history)."""

from __future__ import annotations

import re

from gateway.audit import query
from gateway.audit.schemas import AuditPage
from gateway.auth.permissions import ADMIN
from gateway.platform.errors import ErrorCode
from gateway.platform.http import params
from gateway.platform.http.endpoint import Call, Endpoint, Param, Reply

E = ErrorCode
#: a filter's text: 1 to 200 characters, none of them a control character
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]{1,200}(?!\n)$"
_TEXT = re.compile(TEXT_PATTERN)


def _text_param(name: str, description: str) -> Param:
    return Param(name, description, {"type": "string", "minLength": 1, "maxLength": 200, "pattern": TEXT_PATTERN})


def _text(c: Call, name: str) -> str | None:
    raw = c.request.query_params.get(name)
    if raw is not None and not _TEXT.fullmatch(raw):
        raise params.invalid(name, f"`{name}` must be 1 to 200 characters, none of them a control character.")
    return raw


async def list_audit(c: Call) -> Reply:
    f = query.Filter(
        start=params.instant(c, "from"),
        end=params.instant(c, "to"),
        actor=_text(c, "actor"),
        action=_text(c, "action"),
        target=_text(c, "target"),
    )
    return Reply(await query.page(c.svc.ledger, f, params.after_seq(c), params.page_size(c)))


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/v1/audit",
        "audit_list",
        "The audit log of the back office: every action (who, when, what, before, after), newest first, a "
        "page at a time. Never a password, key or personal document.",
        list_audit,
        AuditPage,
        permissions=ADMIN,
        tag="back-office",
        errors=(E.LEDGER_UNAVAILABLE,),
        query=(
            params.instant_param("from", "Only actions at or after this instant (a date: its midnight, UTC)."),
            params.instant_param("to", "Only actions before this instant (a date: its midnight, UTC)."),
            _text_param("actor", 'Only this actor\'s actions: "apikey:<id>", "cli:<login>" or "system".'),
            _text_param("action", 'Only actions starting so, e.g. "apikey." or "participant.updated".'),
            _text_param("target", 'Only targets starting so, e.g. "participant EMP001/".'),
            params.after_seq_param(),
            params.page_size_param(),
        ),
    ),
)
