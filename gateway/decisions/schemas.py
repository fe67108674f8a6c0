"""The bodies of the decision log read back: one decision, and a page of them."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, UnsetType

from gateway.platform.errors import ErrorCode
from gateway.platform.http.schemas import Out, Timestamp


class DecisionView(Out):
    """One decision of the log (the retailer's communication log), under its protocol."""

    protocol: str
    at: Timestamp
    kind: str
    outcome: Literal["APPROVED", "DECLINED"]
    request: dict
    answer: dict
    http_status: int | UnsetType = UNSET
    error: ErrorCode | UnsetType = UNSET
    convenio: str | UnsetType = UNSET
    participant: str | UnsetType = UNSET
    empenho: str | UnsetType = UNSET


class DecisionPage(Out):
    """The decisions that match, newest first."""

    decisions: list[DecisionView]
    next_after: Annotated[str, Meta(description="Pass as `after` for the next page (a protocol).")] | UnsetType = UNSET
