"""Request and response bodies: typed msgspec Structs, the one source for decoding,
encoding and the OpenAPI document. Amounts are integer centavos, always."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from gateway.errors import ErrorCode

# R$ 1 bilhão: far above any sale, and well inside Lua's exact-integer range (2^53).
MAX_AMOUNT = 100_000_000_000

Code = Annotated[
    str,
    Meta(
        # (?!\n): Python's $ also matches before a final newline; "CLI001\n" is no code
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}(?!\n)$",
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
#: what an operator may set; the system also sets BLOCKED_OVERDUE (unpaid duplicatas)
Status = Literal["ACTIVE", "BLOCKED", "BLOCKED_CREDIT"]


class Frozen(Struct, frozen=True, forbid_unknown_fields=True):
    pass


class Out(Struct, omit_defaults=True):
    pass


# --- errors --------------------------------------------------------------------------------
class ErrorDetail(Struct):
    code: ErrorCode
    message: str
    field: str | UnsetType = UNSET
    available: int | UnsetType = UNSET
    protocol: str | UnsetType = UNSET
    status: str | UnsetType = UNSET
    retry_after: int | UnsetType = UNSET


class ErrorBody(Struct):
    error: ErrorDetail


# --- limit query ---------------------------------------------------------------------------
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


# --- password check ------------------------------------------------------------------------
class PasswordCheck(Frozen):
    password: Annotated[str, Meta(min_length=1, max_length=128)]
    integration_key: Annotated[str, Meta(min_length=1, max_length=256)]


class PasswordResult(Out):
    valid: bool
    proof: str | UnsetType = UNSET
    expires_in: int | UnsetType = UNSET
    attempts_left: int | UnsetType = UNSET
    protocol: str | UnsetType = UNSET


# --- empenho -------------------------------------------------------------------------------
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
            str,
            Meta(
                min_length=1,
                max_length=64,
                pattern=r"^[A-Za-z0-9._-]+$",
                description="The order (pedido) this sale pays, store or web: GET /v1/orders/{order} lists it.",
            ),
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


# --- back-office registry ------------------------------------------------------------------
class Rollover(Frozen):
    policy: Literal["MONTHLY", "ON_BILLING", "ON_SETTLEMENT"] = "MONTHLY"
    day: Annotated[int, Meta(ge=1, le=31)] | None = None


class Billing(Frozen):
    automatic: bool = False
    period: Literal["DAILY", "MONTHLY"] = "MONTHLY"
    in_participant_name: bool = False
    payment_method: Annotated[str, Meta(max_length=64, pattern=PLAIN)] = "BOLETO"
    due_days: Annotated[int, Meta(ge=0, le=365, description="Days from issue to the due date.")] = 10
    block_after_days: Annotated[
        int, Meta(ge=0, le=365, description="Days past due after which an unpaid duplicata blocks the convênio.")
    ] = 5


class Windows(Frozen):
    """Limit windows (seed 003): caps a hold must also fit in, besides the balance; None: no cap.
    On a convênio, daily/monthly cap its participants' sum; on a participant, their own."""

    order_max: Annotated[Money | None, Meta(description="Most one hold (one order) may take.")] = None
    daily_max: Annotated[Money | None, Meta(description="Most the holds of one local day may take.")] = None
    monthly_max: Annotated[Money | None, Meta(description="Most the holds of one local month may take.")] = None


Reason = Annotated[str, Meta(max_length=256, pattern=PLAIN, description="Why: kept in the change history.")]


class ConvenioCreate(Frozen):
    code: Code
    name: Annotated[str, Meta(min_length=1, max_length=128, pattern=PLAIN)]
    total_limit: Money
    tolerance: Money = 0
    shared: bool = False
    rollover: Rollover = Rollover(policy="MONTHLY", day=1)
    billing: Billing = Billing()
    requires_vehicle: bool = False
    status: Status = "ACTIVE"
    windows: Windows = Windows()


class ConvenioUpdate(Frozen):
    name: Annotated[str, Meta(min_length=1, max_length=128, pattern=PLAIN)] | None = None
    total_limit: Money | None = None
    tolerance: Money | None = None
    shared: bool | None = None
    rollover: Rollover | None = None
    billing: Billing | None = None
    requires_vehicle: bool | None = None
    status: Status | None = None
    windows: Windows | None = None
    reason: Reason | None = None


class ConvenioView(Struct):
    code: str
    name: str
    total_limit: int
    tolerance: int
    shared: bool
    rollover: Rollover
    billing: Billing
    requires_vehicle: bool
    status: str
    windows: Windows
    allocated: int
    balance: SignedMoney
    reserved: int
    created_at: Timestamp
    updated_at: Timestamp


Password = Annotated[str, Meta(min_length=4, max_length=128)]


class ParticipantCreate(Frozen):
    code: Code
    name: Annotated[str, Meta(min_length=1, max_length=128, pattern=PLAIN)]
    document: Annotated[str, Meta(max_length=32, pattern=PLAIN)] = ""
    limit: Money = 0
    password: Password | None = None
    status: Status = "ACTIVE"
    windows: Windows = Windows()


class ParticipantUpdate(Frozen):
    name: Annotated[str, Meta(min_length=1, max_length=128, pattern=PLAIN)] | None = None
    document: Annotated[str, Meta(max_length=32, pattern=PLAIN)] | None = None
    limit: Money | None = None
    password: Password | None = None
    status: Status | None = None
    windows: Windows | None = None
    reason: Reason | None = None


class ParticipantView(Struct):
    convenio: str
    code: str
    name: str
    document: str
    limit: int
    balance: SignedMoney
    reserved: int
    status: str
    password_set: bool
    windows: Windows
    created_at: Timestamp
    updated_at: Timestamp


class ParticipantList(Struct):
    participants: list[ParticipantView]
    next_after: str | None


class VehicleSave(Frozen):
    plate: Plate
    description: Annotated[str, Meta(max_length=128, pattern=PLAIN)] = ""


class VehicleView(Out):
    plate: str
    description: str
    registered_at: Timestamp
    last_km: int | UnsetType = UNSET
    last_km_at: Timestamp | UnsetType = UNSET


class VehicleList(Struct):
    vehicles: list[VehicleView]


class IntegrationKeySet(Frozen):
    integration_key: Annotated[str, Meta(min_length=8, max_length=256)]


class Done(Struct):
    ok: bool = True


class Health(Struct):
    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)


# --- the ledger (Postgres) -------------------------------------------------------------------
class DecisionView(Out):
    """One decision of the log (seed 004's communication log), under its protocol."""

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


class Movement(Out):
    """A change of a balance: negative for a sale, positive for a reversal or a limit raise."""

    seq: int
    protocol: str
    at: Timestamp
    kind: Literal["SALE", "REVERSAL", "LIMIT_CHANGE", "ROLLOVER", "RESTORE"]
    amount: Annotated[int, Meta(description="Centavos, signed: the change of the balance.")]
    balance_after: SignedMoney
    pool: Literal["P", "C"]
    participant: str | UnsetType = UNSET
    empenho: str | UnsetType = UNSET
    terminal: str | UnsetType = UNSET
    store: str | UnsetType = UNSET
    sale: str | UnsetType = UNSET
    coupon: str | UnsetType = UNSET
    batch: Annotated[str, Meta(description="ROLLOVER: its date; RESTORE: the duplicata given back.")] | UnsetType = (
        UNSET
    )


class MovementList(Out):
    movements: list[Movement]
    next_after: int | UnsetType = UNSET


# --- duplicatas (issue 6) ------------------------------------------------------------------
class DuplicataLine(Out):
    movement: str
    kind: Literal["SALE", "REVERSAL"]
    amount: Annotated[int, Meta(description="Centavos billed: a sale positive, a reversal negative.")]
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
