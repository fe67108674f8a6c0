"""Bodies of orders: what pays an order (its credit holds and empenhos, and their returns), and
the ERP's order statuses (docs/credits.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from gateway.platform.errors import ErrorCode
from gateway.platform.http.schemas import Frozen, OrderRef, Out, Timestamp

StatusCode = Annotated[
    str,
    Meta(
        pattern=r"^[A-Z0-9][A-Z0-9_]{0,15}(?!\n)$",
        description="An order status code of the ERP (its sgltiposituacaopedido), e.g. PF, PC.",
        examples=["PF"],
    ),
]


# --- orders ----------------------------------------------------------------------------------
class OrderCredit(Struct):
    reference: str
    type: str
    amount: Annotated[int, Meta(description="Held (PENDING, CANCELLED, EXPIRED) or committed (COMMITTED, REVERSED).")]
    status: str
    hold: str
    credit: str
    returned: Annotated[int, Meta(description="Of the committed amount, centavos returns gave back.")] = 0


class OrderEmpenho(Out):
    id: str
    convenio: str
    participant: str
    amount: int
    status: str
    committed_amount: int | UnsetType = UNSET
    returned: int | UnsetType = UNSET


class OrderReturn(Out):
    """A return (devolução) of part of the order: of one of its credit holds or of one of its empenhos."""

    id: str
    sale: Annotated[str, Meta(description="The credit hold or the empenho returned.")]
    kind: Literal["CREDIT_HOLD", "EMPENHO"]
    amount: int
    at: Timestamp
    protocol: str
    store: str | UnsetType = UNSET
    terminal: str | UnsetType = UNSET
    refund: Annotated[Literal["POOL", "CREDIT"], Meta(description="An empenho's: where it went.")] | UnsetType = UNSET


class OrderView(Struct):
    order: str
    credits: list[OrderCredit]
    empenhos: list[OrderEmpenho]
    returns: Annotated[list[OrderReturn], Meta(description="Every return of the order, oldest first.")] = []


# --- the ERP's order statuses ------------------------------------------------------------------
StatusList = Annotated[list[StatusCode], Meta(max_length=32)]


class OrderStatusParams(Frozen):
    commit_statuses: StatusList
    cancel_statuses: StatusList
    update_balance: bool


class OrderStatusParamsView(Out):
    commit_statuses: list[str]
    cancel_statuses: list[str]
    update_balance: bool
    updated_at: Timestamp | UnsetType = UNSET


class OrderStatusItem(Frozen):
    order: OrderRef
    status: StatusCode


class OrderStatusBatch(Frozen):
    orders: Annotated[list[OrderStatusItem], Meta(min_length=1, max_length=500)]


class OrderStatusError(Struct):
    code: ErrorCode
    message: str


class OrderStatusResult(Out):
    order: str
    status: str
    action: Literal["COMMIT", "CANCEL", "NONE"]
    update_balance: bool
    committed: list[str]
    released: list[str]
    cancelled: list[str]
    reversed: list[str]
    unchanged: list[str]
    error: OrderStatusError | UnsetType = UNSET


class OrderStatusReport(Struct):
    orders: list[OrderStatusResult]
