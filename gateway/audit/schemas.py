"""The audit log's answers: its rows, newest first, a page at a time."""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import UNSET, Meta, UnsetType

from gateway.platform.http.schemas import Out, Timestamp


class AuditEntry(Out):
    """One back-office action: who did what to what, when, and the state before and after it."""

    seq: int
    protocol: Annotated[str, Meta(description="The action's protocol (its event's, for an action through Redis).")]
    at: Timestamp
    actor: Annotated[str, Meta(description='Who: "apikey:<id>", "cli:<login>", or "system".')]
    action: Annotated[
        str, Meta(description="What, e.g. convenio.updated, apikey.revoked.", examples=["convenio.updated"])
    ]
    target: Annotated[str, Meta(description='What it acted on, e.g. "participant EMP001/CLI001".')]
    before: Annotated[dict[str, Any] | None, Meta(description="What the action changed, as it was (never a secret).")]
    after: Annotated[dict[str, Any] | None, Meta(description="The record after the action (never a secret).")]


class AuditPage(Out):
    entries: list[AuditEntry]
    next_after: int | UnsetType = UNSET
