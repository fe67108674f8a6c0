"""The building blocks of every request and response body: typed msgspec Structs and the field
types they share, the one source for decoding, encoding and the OpenAPI document. Each feature
keeps its own bodies in its `schemas` module. Amounts are integer centavos, always."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from gateway.platform.errors import ErrorCode

# R$ 1 bilhão: far above any sale, and well inside Lua's exact-integer range (2^53).
MAX_AMOUNT = 100_000_000_000

# (?!\n) in the patterns: Python's $ also matches before a final newline; "CLI001\n" is no code
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}(?!\n)$"
Code = Annotated[
    str,
    Meta(
        pattern=CODE_PATTERN,
        description="A code: letters, digits, '_', '.', '-'; 1 to 64 characters.",
        examples=["EMP001"],
    ),
]
Amount = Annotated[int, Meta(gt=0, le=MAX_AMOUNT, description="Centavos, > 0.")]
Money = Annotated[int, Meta(ge=0, le=MAX_AMOUNT, description="Centavos, >= 0.")]
SignedMoney = Annotated[int, Meta(description="Centavos; may be negative after tolerance use.")]
#: free text a person typed: no control characters (Postgres refuses NUL; nobody means them)
PLAIN = r"^[^\x00-\x1f\x7f]*(?!\n)$"
Text = Annotated[str, Meta(min_length=1, max_length=64, pattern=PLAIN)]
Plate = Annotated[str, Meta(pattern=r"^[A-Za-z0-9\-]{1,16}(?!\n)$", description="Vehicle plate.", examples=["ABC1D23"])]
Timestamp = Annotated[str, Meta(description="RFC 3339, UTC.", examples=["2026-11-23T14:05:00.000Z"])]
#: an order (pedido) id, store or web: what empenhos and credit holds name, and GET /v1/orders/{order} takes
ORDER_PATTERN = r"^[A-Za-z0-9._-]{1,64}(?!\n)$"
OrderRef = Annotated[
    str, Meta(pattern=ORDER_PATTERN, description="An order (pedido) id, store or web.", examples=["PED-000123"])
]
Reason = Annotated[str, Meta(max_length=256, pattern=PLAIN, description="Why: kept in the change history.")]
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


class Frozen(Struct, frozen=True, forbid_unknown_fields=True):
    """A request body: immutable, and an unknown field is an error naming it."""


class Out(Struct, omit_defaults=True):
    """A response body whose unset optional fields are left out."""


# --- errors --------------------------------------------------------------------------------
class ErrorDetail(Struct, omit_defaults=True):
    """Every field an error body may carry; which ones depends on the code."""

    code: ErrorCode
    message: str
    field: (
        Annotated[str, Meta(description="INVALID_REQUEST: the offending field, parameter or header.")] | UnsetType
    ) = UNSET
    available: (
        Annotated[int, Meta(description="Centavos the pool or the customer's credits still cover.")] | UnsetType
    ) = UNSET
    protocol: Annotated[str, Meta(description="The decision's protocol (a decline is a decision).")] | UnsetType = UNSET
    status: (
        Annotated[
            Literal["PENDING", "COMMITTED", "CANCELLED", "EXPIRED", "REVERSED", "APPROVED", "REJECTED"],
            Meta(description="The hold's or the limit request's status when it was refused."),
        ]
        | UnsetType
    ) = UNSET
    retry_after: Annotated[int, Meta(ge=0, description="Seconds to wait before trying again.")] | UnsetType = UNSET
    scope: (
        Annotated[Literal["participant", "convenio"], Meta(description="Whose limit window declined the hold.")]
        | UnsetType
    ) = UNSET
    remaining: Annotated[int, Meta(ge=0, description="Centavos the limit window still allows.")] | UnsetType = UNSET
    held: Annotated[int, Meta(description="Centavos held, when a commit asked for more.")] | UnsetType = UNSET
    returnable: (
        Annotated[int, Meta(ge=0, description="RETURN_EXCEEDS_SALE: centavos of the sale still returnable.")]
        | UnsetType
    ) = UNSET
    total_limit: (
        Annotated[int, Meta(description="LIMIT_ALLOCATION_EXCEEDED: the convênio's total limit, in centavos.")]
        | UnsetType
    ) = UNSET
    allocated: (
        Annotated[int, Meta(description="LIMIT_ALLOCATION_EXCEEDED: centavos already allocated to its participants.")]
        | UnsetType
    ) = UNSET
    unallocated: (
        Annotated[int, Meta(description="LIMIT_ALLOCATION_EXCEEDED: centavos of the total limit still unallocated.")]
        | UnsetType
    ) = UNSET


class ErrorBody(Struct):
    error: ErrorDetail


# --- common answers ----------------------------------------------------------------------------
class Done(Struct):
    ok: bool = True


class Health(Struct):
    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)
