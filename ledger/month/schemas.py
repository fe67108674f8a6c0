"""Bodies of the duplicatas (collection bills) the back office reads and settles."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, UnsetType

from gateway.platform.http.schemas import PLAIN, Frozen, Out, Timestamp


class DuplicataLine(Out):
    movement: str
    kind: Literal["SALE", "REVERSAL", "RETURN"]
    amount: Annotated[int, Meta(description="Centavos billed: a sale positive, a reversal or a return negative.")]
    at: Timestamp
    participant: str | None = None
    empenho: str | None = None


class DuplicataView(Out):
    """A collection bill to the company (or in a participant's name) for a period's sales."""

    id: str
    convenio: str
    period: Literal["DAILY", "MONTHLY"]
    period_start: Annotated[str, Meta(description="First local day billed (YYYY-MM-DD).")]
    period_end: Annotated[str, Meta(description="Day after the last one billed (YYYY-MM-DD).")]
    amount: Annotated[int, Meta(description="Centavos: sales less reversals of sales billed before.")]
    items: int
    payment_method: str
    issued_at: Timestamp
    due_date: str
    status: Literal["OPEN", "PAID"]
    restore: Literal["NONE", "PENDING", "DONE"]
    participant: str | None = None
    paid_at: Timestamp | None = None
    paid_by: str | None = None
    lines: list[DuplicataLine] | UnsetType = UNSET


class DuplicataList(Out):
    duplicatas: list[DuplicataView]


class SettleRequest(Frozen):
    note: Annotated[str, Meta(max_length=256, pattern=PLAIN)] | None = None
