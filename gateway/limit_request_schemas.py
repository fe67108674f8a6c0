"""Bodies of limit-change requests (seed 004, "Solicitação de Alteração de Limite") and of the
registry's change history, as msgspec Structs like gateway/schemas.py's."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from gateway.schemas import Frozen, Money, Out, Reason, Timestamp

#: a reason someone must give: at least one visible character, no control characters
Why = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=256,
        pattern=r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*(?!\n)$",
        description="Why: kept with the request and in the change history.",
    ),
]
RequestStatus = Literal["PENDING", "APPROVED", "REJECTED"]


class LimitRequestCreate(Frozen):
    suggested_limit: Annotated[
        Money, Meta(description="Limite de Crédito Sugerido: only a suggestion; the approval sets the limit.")
    ]
    reason: Why
    urgent: Annotated[bool, Meta(description="Emergencial: listed before the others.")] = False


class LimitRequestApprove(Frozen):
    limit: Annotated[Money | None, Meta(description="The limit granted; by default the suggested one.")] = None
    reason: Reason | None = None


class LimitRequestReject(Frozen):
    reason: Why


class LimitRequestView(Struct):
    id: str
    convenio: str
    participant: str
    status: RequestStatus
    current_limit: Annotated[int, Meta(description="The participant's limit when the request was made.")]
    suggested_limit: int
    reason: str
    urgent: bool
    requested_by: str
    requested_at: Timestamp
    decided_by: str | None = None
    decided_at: Timestamp | None = None
    approved_limit: int | None = None
    decision_reason: str | None = None


class LimitRequestList(Out):
    requests: list[LimitRequestView]
    next_after: str | UnsetType = UNSET


class HistoryChange(Out):
    """One change: LIMIT (centavos) or STATUS, before and after; or a step of a limit request
    (REQUEST: before is the limit when asked, after the approved limit, null while pending or
    when rejected)."""

    at: Timestamp
    kind: Literal["LIMIT", "STATUS", "REQUEST"]
    by: Annotated[str, Meta(description='Who: "apikey:<id>", an operator, or "system".')]
    before: int | str | None
    after: int | str | None
    reason: str
    request: Annotated[str | None, Meta(description="The limit request behind the change.")] = None
    request_status: RequestStatus | None = None
    suggested: int | None = None
    urgent: bool | None = None


class HistoryPage(Out):
    history: list[HistoryChange]
    next_after: int | UnsetType = UNSET
