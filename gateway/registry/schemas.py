"""Bodies of the back-office registry: convênios with their policies (rollover, billing, limit
windows), participants, vehicles, a convênio's movements, limit-change requests and the change
history of limits and statuses."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from gateway.platform.clock import BRAZIL_ZONES
from gateway.platform.http.schemas import PLAIN, Code, Frozen, Money, Out, Plate, Reason, SignedMoney, Timestamp, Why

#: what an operator may set; the system also sets BLOCKED_OVERDUE (unpaid duplicatas)
Status = Literal["ACTIVE", "BLOCKED", "BLOCKED_CREDIT"]


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
    """Limit windows: caps a hold must also fit in, besides the balance; None: no cap.
    On a convênio, daily/monthly cap its participants' sum; on a participant, their own."""

    order_max: Annotated[Money | None, Meta(description="Most one hold (one order) may take.")] = None
    daily_max: Annotated[Money | None, Meta(description="Most the holds of one local day may take.")] = None
    monthly_max: Annotated[Money | None, Meta(description="Most the holds of one local month may take.")] = None


Stores = Annotated[
    list[Code],
    Meta(max_length=500, description="The only stores where the convênio is accepted; empty: every store."),
]
ConvenioZone = Annotated[
    Literal[BRAZIL_ZONES],  # type: ignore[valid-type]
    Meta(description="The convênio's time zone: its rollover and billing days."),
]


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
    stores: Stores = []
    time_zone: ConvenioZone = "America/Sao_Paulo"


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
    stores: Stores | None = None
    time_zone: ConvenioZone | None = None
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
    stores: Annotated[list[str], Meta(description="The stores where it is accepted; empty: every store.")] = []
    time_zone: str = "America/Sao_Paulo"


class ConvenioPage(Out):
    """A page of the convênios found, each as GET /v1/convenios/{convenio} shows it."""

    convenios: list[ConvenioView]
    next_after: Annotated[str, Meta(description="Pass as `after` for the next page.")] | UnsetType = UNSET


Password = Annotated[str, Meta(min_length=4, max_length=128)]
Document = Annotated[
    str,
    Meta(
        max_length=32,
        pattern=PLAIN,
        description="CPF or CNPJ (numeric or alphanumeric), with or without punctuation, checked by its "
        'check digits; "" for none. Stored sealed: never shown again in clear (see `convenio privacy export`).',
    ),
]


class ParticipantCreate(Frozen):
    code: Code
    name: Annotated[str, Meta(min_length=1, max_length=128, pattern=PLAIN)]
    document: Document = ""
    limit: Money = 0
    password: Password | None = None
    status: Status = "ACTIVE"
    windows: Windows = Windows()


class ParticipantUpdate(Frozen):
    name: Annotated[str, Meta(min_length=1, max_length=128, pattern=PLAIN)] | None = None
    document: Document | None = None
    limit: Money | None = None
    password: Password | None = None
    status: Status | None = None
    windows: Windows | None = None
    reason: Reason | None = None


class ParticipantView(Struct):
    convenio: str
    code: str
    name: str
    document: Annotated[str, Meta(description='The document masked, e.g. "***.456.789-**"; "" for none.')]
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


class ParticipantPage(Out):
    """A page of the participants found across convênios, by participant code then convênio."""

    participants: list[ParticipantView]
    next_after: Annotated[str, Meta(description="Pass as `after` for the next page.")] | UnsetType = UNSET


class ParticipantSearch(Frozen):
    document: Annotated[
        str, Meta(min_length=1, max_length=32, pattern=PLAIN, description="CPF or CNPJ, with or without punctuation.")
    ]


class ParticipantMatches(Struct):
    """The customer with this document, once per convênio they take part in."""

    participants: list[ParticipantView]


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


class Movement(Out):
    """A change of a balance: negative for a sale, positive for a reversal or a limit raise."""

    seq: int
    protocol: str
    at: Timestamp
    kind: Literal["SALE", "REVERSAL", "RETURN", "LIMIT_CHANGE", "ROLLOVER", "RESTORE"]
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


# --- limit-change requests and the change history ---------------------------------------------
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
