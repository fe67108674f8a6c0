"""Bodies of the returns of a committed sale (devoluções)."""

from __future__ import annotations

from typing import Annotated

from msgspec import UNSET, Meta, Struct, UnsetType

from gateway.credits.schemas import CreditGivenBack
from gateway.holds.schemas import Refund
from gateway.platform.http.schemas import PLAIN, Amount, Frozen, Out, SignedMoney, Text


class ReturnRequest(Frozen):
    """A return (devolução) of part of a committed sale, in the store and at the terminal that take it."""

    amount: Amount
    store: Text
    terminal: Text
    reason: Annotated[str, Meta(max_length=256, pattern=PLAIN)] | None = None
    refund: Annotated[
        Refund,
        Meta(description="POOL (default): back to the convênio's balance. CREDIT: a DEVOLUCAO credit of the customer."),
    ] = "POOL"


class RefundCredit(Struct):
    """The customer's credit a return became (refund CREDIT)."""

    id: str
    reference: str


class ReturnOutcome(Out):
    id: str
    empenho: str
    amount: int
    returned: Annotated[int, Meta(description="Centavos of the sale returned so far, this return included.")]
    returnable: Annotated[int, Meta(description="Centavos of the sale still returnable.")]
    balance: SignedMoney
    refund: Refund
    protocol: str
    credit: RefundCredit | UnsetType = UNSET


class CreditReturnRequest(Frozen):
    """A return (devolução) of part of a committed credit hold: where it is taken, if in a store."""

    amount: Amount
    store: Text | None = None
    terminal: Text | None = None
    reason: Annotated[str, Meta(max_length=256, pattern=PLAIN)] | None = None


class CreditReturnOutcome(Out):
    id: str
    hold: str
    amount: int
    returned: Annotated[int, Meta(description="Centavos of the order returned so far, this return included.")]
    returnable: Annotated[int, Meta(description="Centavos of the order still returnable.")]
    credits: Annotated[
        list[CreditGivenBack], Meta(description="What went back to which credit, in the order the hold took them.")
    ]
    protocol: str
