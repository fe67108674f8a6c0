"""One `Endpoint` per operation: its path, the permissions that may call it, its body and answer
types, every error it can return. The app's table is a list of these, assembled from each
feature's `api` module; routing and /openapi.json are both built from it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.requests import Request

from gateway.platform.errors import ErrorCode
from gateway.platform.services import Services

JSON = "application/json"


class Caller(Protocol):
    """Who called: the API key that authenticated the request (its id, never the key)."""

    id: str
    permissions: frozenset[int]

    def allows(self, needed: frozenset[int]) -> bool: ...


class Authenticator(Protocol):
    async def authenticate(self, authorization: str | None) -> Caller: ...


@dataclass
class Call:
    """What a handler is given: the request, the services, the caller, the decoded body and the
    path parameters (already checked against their patterns)."""

    request: Request
    svc: Services
    key: Caller | None
    body: Any
    path: dict[str, str]

    @property
    def key_id(self) -> str:
        assert self.key is not None, "a public endpoint has no caller"
        return self.key.id


def who(c: Call) -> str:
    """Who made a change, for the histories: the API key that asked (its id, never the key)."""
    return f"apikey:{c.key.id}" if c.key is not None else ""


@dataclass
class Reply:
    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[Reply]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    name: str
    summary: str
    handler: Handler
    response: type
    status: int = 200
    also: tuple[int, ...] = ()  # other success statuses (e.g. 200 when a save changed a record)
    permissions: frozenset[int] = frozenset()
    request: type | None = None
    body_optional: bool = False
    #: the errors this operation itself can answer (the edge's own, such as INVALID_REQUEST,
    #: UNAUTHORIZED and SERVICE_UNAVAILABLE, are added to every operation's list)
    errors: tuple[ErrorCode, ...] = ()
    tag: str = "terminal"
    headers: tuple[tuple[str, str], ...] = ()  # (name, description) of required headers
    query: tuple[tuple[str, str], ...] = ()
    public: bool = False
