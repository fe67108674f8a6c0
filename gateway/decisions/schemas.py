"""The body of a decision read back from the decision log."""

from __future__ import annotations

from typing import Literal

from msgspec import UNSET, UnsetType

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
