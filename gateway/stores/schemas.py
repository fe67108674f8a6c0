"""Bodies of stores and their terminals."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

from gateway.platform.clock import BRAZIL_ZONES
from gateway.platform.http.schemas import PLAIN, Code, Frozen, Timestamp

StoreStatus = Literal["ACTIVE", "BLOCKED"]
TimeZone = Annotated[
    Literal[BRAZIL_ZONES],  # type: ignore[valid-type]
    Meta(description="The store's IANA time zone: its business days, cash closing and reconciliation."),
]
Name = Annotated[str, Meta(min_length=1, max_length=128, pattern=PLAIN)]


class StoreCreate(Frozen):
    code: Code
    name: Name
    time_zone: TimeZone = "America/Sao_Paulo"
    status: StoreStatus = "ACTIVE"


class StoreUpdate(Frozen):
    name: Name | None = None
    time_zone: TimeZone | None = None
    status: StoreStatus | None = None


class TerminalSave(Frozen):
    status: StoreStatus = "ACTIVE"


class TerminalView(Struct):
    code: str
    status: str


class StoreView(Struct):
    code: str
    name: str
    time_zone: str
    status: str
    terminals: list[TerminalView]
    created_at: Timestamp
    updated_at: Timestamp


class StoreList(Struct):
    stores: list[StoreView]


class TerminalSaved(Struct):
    store: str
    terminal: str
    status: str
