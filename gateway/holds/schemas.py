"""Bodies of the checkout: the limit query, empenhos (holds) and their commit and cancel, and the
status history every hold keeps (credit holds share it)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from gateway.platform.http.schemas import (
    PLAIN,
    Amount,
    Code,
    Frozen,
    OrderRef,
    Out,
    Plate,
    SignedMoney,
    Text,
    Timestamp,
)


class LimitView(Struct):
    convenio: str
    participant: str
    status: str
    shared: bool
    limit: int
    tolerance: int
    balance: SignedMoney
    reserved: int
    available: SignedMoney


class ConveniosOfParticipant(Struct):
    convenios: list[LimitView]


class Vehicle(Frozen):
    plate: Plate
    odometer_km: Annotated[int, Meta(ge=0, le=10_000_000)] | None = None


class EmpenhoRequest(Frozen):
    convenio: Code
    participant: Code
    amount: Amount
    terminal: Text
    store: Text
    sale: Text
    proof: Annotated[str, Meta(max_length=256)] | None = None
    vehicle: Vehicle | None = None
    order: (
        Annotated[
            OrderRef,
            Meta(description="The order (pedido) this sale pays, store or web: GET /v1/orders/{order} lists it."),
        ]
        | None
    ) = None


class EmpenhoHeld(Struct):
    id: str
    status: str
    amount: int
    available: SignedMoney
    expires_at: Timestamp
    protocol: str


class CommitRequest(Frozen):
    coupon: Text
    amount: Amount | None = None


class CancelRequest(Frozen):
    reason: Annotated[str, Meta(max_length=256, pattern=PLAIN)] | None = None


class EmpenhoOutcome(Struct):
    id: str
    status: str
    amount: int
    balance: SignedMoney
    protocol: str


class HistoryEntry(Struct):
    status: str
    at: Timestamp
    protocol: str
    amount: int


Refund = Literal["POOL", "CREDIT"]


class ReturnEntry(Out):
    id: str
    amount: int
    refund: Refund
    store: str
    terminal: str
    at: Timestamp
    protocol: str
    reason: str | UnsetType = UNSET
    credit_reference: str | UnsetType = UNSET


class EmpenhoView(Out):
    id: str
    convenio: str
    participant: str
    status: str
    amount: int
    terminal: str
    store: str
    sale: str
    created_at: Timestamp
    expires_at: Timestamp
    protocol: str
    history: list[HistoryEntry]
    committed_amount: int | UnsetType = UNSET
    coupon: str | UnsetType = UNSET
    vehicle: Vehicle | UnsetType = UNSET
    cancel_reason: str | UnsetType = UNSET
    order: str | UnsetType = UNSET
    returned: int | UnsetType = UNSET
    returnable: int | UnsetType = UNSET
    returns: list[ReturnEntry] | UnsetType = UNSET
