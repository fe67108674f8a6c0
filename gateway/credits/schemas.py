"""Bodies of the customers' current accounts: credits, credit holds, orders, the ERP's order
statuses and the finance export (docs/credits.md). Amounts are integer centavos, always."""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from gateway.holds.schemas import HistoryEntry
from gateway.platform.http.schemas import Amount, Code, Frozen, OrderRef, Out, Text, Timestamp

CreditType = Annotated[
    str,
    Meta(
        pattern=r"^[A-Z][A-Z0-9_]{1,31}(?!\n)$",
        description="MANUAL, DEVOLUCAO, RUPTURA, CASHBACK, CANCELAMENTO, or the retailer's own: "
        "capitals, digits, '_'; 2 to 32 characters.",
        examples=["DEVOLUCAO"],
    ),
]
Reference = Annotated[
    str,
    Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/#\-]{0,63}(?!\n)$",
        description="The credit's reference, unique per customer: letters, digits, '.', '_', ':', '/', '#', '-'; "
        "1 to 64 characters.",
        examples=["DEV-2026-000123"],
    ),
]
Channel = Literal["STORE", "WEB"]


# --- credits ----------------------------------------------------------------------------------
class CreditOrigin(Frozen):
    """Where a credit came from: a store (its store and terminal) or a web order."""

    channel: Channel
    store: Text | None = None
    terminal: Text | None = None
    order: OrderRef | None = None


class CreditCreate(Frozen):
    reference: Reference
    type: CreditType
    amount: Amount
    origin: CreditOrigin
    expires_at: (
        Annotated[
            datetime.datetime,
            Meta(tz=True, description="RFC 3339 with a zone; from then on the credit cannot be used."),
        ]
        | None
    ) = None


class Origin(Out):
    channel: str
    store: str | UnsetType = UNSET
    terminal: str | UnsetType = UNSET
    order: str | UnsetType = UNSET


class CreditCreated(Out):
    id: str
    customer: str
    reference: str
    type: str
    amount: int
    origin: Origin
    created_at: Timestamp
    protocol: str
    expires_at: Timestamp | UnsetType = UNSET


class CreditView(Out):
    id: str
    reference: str
    type: str
    amount: int
    remaining: Annotated[int, Meta(description="Centavos not used (held or debited) yet.")]
    status: Literal["ACTIVE", "USED", "EXPIRED"]
    origin: Origin
    created_at: Timestamp
    protocol: str
    expires_at: Timestamp | UnsetType = UNSET


class CreditList(Out):
    customer: str
    available: Annotated[int, Meta(description="What the active credits still cover, in centavos.")]
    credits: list[CreditView]


# --- credit holds ----------------------------------------------------------------------------
class CreditHoldRequest(Frozen):
    customer: Code
    amount: Amount
    order: OrderRef
    channel: Channel
    store: Text | None = None
    terminal: Text | None = None


class CreditUsed(Struct):
    reference: str
    type: str
    amount: int


class CreditHeld(Struct):
    id: str
    status: str
    customer: str
    amount: int
    order: str
    credits: list[CreditUsed]
    available: int
    expires_at: Timestamp
    protocol: str


class CreditHoldOutcome(Struct):
    id: str
    status: str
    amount: int
    credits: list[CreditUsed]
    protocol: str


class CreditHoldPart(Out):
    credit: str
    reference: str
    type: str
    held: int
    committed: int | UnsetType = UNSET
    returned: Annotated[int, Meta(description="Centavos of this part given back by returns.")] | UnsetType = UNSET


class CreditGivenBack(Struct):
    """What a return gave back to one credit; `expired`: the credit had expired by then, and
    stays expired (that share lapses with it)."""

    reference: str
    type: str
    amount: int
    expired: bool = False


class CreditReturnEntry(Out):
    id: str
    amount: int
    at: Timestamp
    protocol: str
    credits: list[CreditGivenBack]
    store: str | UnsetType = UNSET
    terminal: str | UnsetType = UNSET
    reason: str | UnsetType = UNSET


class CreditHoldView(Out):
    id: str
    customer: str
    status: str
    amount: int
    order: str
    channel: str
    parts: list[CreditHoldPart]
    created_at: Timestamp
    expires_at: Timestamp
    protocol: str
    history: list[HistoryEntry]
    store: str | UnsetType = UNSET
    terminal: str | UnsetType = UNSET
    committed_amount: int | UnsetType = UNSET
    coupon: str | UnsetType = UNSET
    cancel_reason: str | UnsetType = UNSET
    returned: int | UnsetType = UNSET
    returnable: int | UnsetType = UNSET
    returns: list[CreditReturnEntry] | UnsetType = UNSET


# --- finance export --------------------------------------------------------------------------
class CreditMovement(Out):
    """A debit or credit of a customer's current account, with its credit's reference and type."""

    seq: int
    at: Timestamp
    customer: str
    kind: Annotated[
        Literal["CREDIT", "DEBIT", "RETURN", "RETURN_EXPIRED"],
        Meta(description="RETURN_EXPIRED: given back to a credit that had expired; it lapses with it."),
    ]
    type: str
    reference: str
    amount: Annotated[int, Meta(description="Centavos, signed: a credit positive, a debit negative.")]
    remaining_after: int
    credit: str
    protocol: str
    hold: str | UnsetType = UNSET
    order: str | UnsetType = UNSET
    channel: str | UnsetType = UNSET
    store: str | UnsetType = UNSET
    terminal: str | UnsetType = UNSET
    return_id: Annotated[str, Meta(description="The return this line belongs to.")] | UnsetType = UNSET
    sale: Annotated[str, Meta(description="The sale a return gives back: a credit hold or an empenho.")] | UnsetType = (
        UNSET
    )


class CreditMovementList(Out):
    movements: list[CreditMovement]
    next_after: int | UnsetType = UNSET
