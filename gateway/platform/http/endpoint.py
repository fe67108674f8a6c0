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
    """Who called: the API key that authenticated the request (its id, never the key), the store
    and terminal it is scoped to (None: any), and the id its Idempotency-Keys are scoped to."""

    id: str
    permissions: frozenset[int]
    store: str | None
    terminal: str | None

    @property
    def scope_id(self) -> str: ...

    def allows(self, needed: frozenset[int]) -> bool: ...


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
        """The id the ledger and the Idempotency-Keys know the caller by: its key's lineage (a
        rotated key's first id), so a retry with a rotated key replays."""
        assert self.key is not None, "a public endpoint has no caller"
        return self.key.scope_id


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
class Param:
    """A query parameter or a request header: its name, what it means, and the JSON Schema of what
    the handler accepts (/openapi.json publishes it; gateway/platform/http/params.py and
    idempotency.py parse them)."""

    name: str
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class Link:
    """An answer that feeds another operation (an OpenAPI link): on the success response, the
    operation named `to` (an Endpoint's `name`) takes `parameters` from it, each a runtime
    expression such as "$response.body#/id"; `body`, when given, is the request body to send."""

    name: str
    to: str
    parameters: tuple[tuple[str, str], ...] = ()
    body: Any = None
    description: str = ""


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
    #: UNAUTHORIZED and SERVICE_UNAVAILABLE, are added by `all_errors`)
    errors: tuple[ErrorCode, ...] = ()
    tag: str = "terminal"
    headers: tuple[Param, ...] = ()  # required headers
    query: tuple[Param, ...] = ()  # optional query parameters
    public: bool = False
    #: the operations its success answer feeds (OpenAPI links, for clients and stateful testing)
    links: tuple[Link, ...] = ()

    def all_errors(self) -> tuple[ErrorCode, ...]:
        """Every error code this operation can answer: its own, then the edge's (EDGE_ERRORS)."""
        codes = [*self.errors]
        if not self.public:  # the key is looked up in Redis, and may be missing, unknown or not enough
            codes += [ErrorCode.UNAUTHORIZED, ErrorCode.FORBIDDEN, ErrorCode.SERVICE_UNAVAILABLE]
        # a request it cannot read (a parameter, a header, a body); every keyed operation lists it,
        # the few that read nothing but the key too, so that the keyed API has one set of refusals
        if not self.public or self.request is not None or self.query or self.headers or "{" in self.path:
            codes.append(ErrorCode.INVALID_REQUEST)
        if self.request is not None:
            codes.append(ErrorCode.BODY_TOO_LARGE)
        codes += EDGE_ERRORS
        return tuple(dict.fromkeys(codes))


#: what the edge answers on any operation whatever it is asked: headers over the limit (before
#: routing: gateway/platform/http/header_limit.py), and the catch-all that no input should reach.
#: Besides these, a keyed operation may answer UNAUTHORIZED, FORBIDDEN and SERVICE_UNAVAILABLE,
#: one with a body BODY_TOO_LARGE, and one that reads the request INVALID_REQUEST.
EDGE_ERRORS: tuple[ErrorCode, ...] = (ErrorCode.HEADERS_TOO_LARGE, ErrorCode.INTERNAL_ERROR)
