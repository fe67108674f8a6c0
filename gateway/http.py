"""The HTTP edge: one `Endpoint` per operation (path, permission, body and response types,
errors) and the single wrapper that authenticates, decodes, calls the handler and renders
the contract's bodies. Routing and /openapi.json are both built from the same table."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError
from starlette.requests import Request
from starlette.responses import Response

from gateway import metrics
from gateway.apikeys import ApiKey
from gateway.core import Gateway
from gateway.errors import ApiError, ErrorCode
from gateway.permissions import Permission

log = logging.getLogger("convenio.http")

MAX_BODY = 64 * 1024
JSON = "application/json"
_DIGITS = re.compile(r"^[0-9]{1,18}$")  # str.isdigit() also accepts "²", which int() refuses
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_PLATE = re.compile(r"^[A-Za-z0-9\-]{1,16}$")
_ENUM_VALUE = re.compile(r"^Invalid enum value .*?(?= - at `|$)", re.DOTALL)
_FIELD = re.compile(r"at `\$\.?([^`]*)`")
_NAMED = re.compile(r"(?:missing required|unknown) field `([^`]*)`")
#: what each path parameter must look like; anything else is INVALID_REQUEST naming it
PATH_PARAMS = {
    "convenio": _CODE,
    "participant": _CODE,
    "plate": _PLATE,
    "id": re.compile(r"^\S{1,64}$"),
    "protocol": re.compile(r"^[A-Za-z0-9]{1,64}$"),
    "duplicata": re.compile(r"^D[0-9A-Z]{26}$"),
    "request": re.compile(r"^L[0-9A-Z]{26}$"),  # a limit-change request
}
UNAVAILABLE = (ConnectionError, TimeoutError, BusyLoadingError, OSError)


@dataclass
class Call:
    request: Request
    gw: Gateway
    key: ApiKey | None
    body: Any
    path: dict[str, str]


def who(c: Call) -> str:
    """Who made a change, for the histories: the API key that asked (its id, never the key)."""
    return f"apikey:{c.key.id}" if c.key is not None else ""


def page_size(c: Call) -> int:
    """The `limit` query parameter of a listing: 1 to 1000, 100 by default."""
    raw = c.request.query_params.get("limit", "100")
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= 1000:
        raise invalid("limit", "`limit` must be a whole number from 1 to 1000.")
    return int(raw)


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
    permissions: frozenset[Permission] = frozenset()
    request: type | None = None
    body_optional: bool = False
    errors: tuple[ErrorCode, ...] = ()
    tag: str = "terminal"
    headers: tuple[tuple[str, str], ...] = ()  # (name, description) of required headers
    query: tuple[tuple[str, str], ...] = ()
    public: bool = False


def error_response(exc: ApiError) -> Response:
    return Response(msgspec.json.encode(exc.body()), exc.status, exc.headers, JSON)


def invalid(field_name: str, message: str) -> ApiError:
    return ApiError(ErrorCode.INVALID_REQUEST, message, field=field_name)


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not _DIGITS.match(declared) or int(declared) > MAX_BODY):
        if not _DIGITS.match(declared):
            raise invalid("Content-Length", "Content-Length must be a whole number.")
        raise ApiError(ErrorCode.BODY_TOO_LARGE)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(ErrorCode.BODY_TOO_LARGE)
        chunks.append(chunk)
    return b"".join(chunks)


def decode(decoder: msgspec.json.Decoder, raw: bytes) -> Any:
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        # msgspec quotes a refused enum value; it may be anything, a pasted password included
        text = _ENUM_VALUE.sub("Not one of the allowed values", str(exc))
        at = _FIELD.search(text)
        where = at.group(1) if at else ""
        named = _NAMED.search(text)
        if named:  # msgspec gives the object's path; the offending field is named apart
            where = f"{where}.{named.group(1)}" if where else named.group(1)
        raise invalid(where or "body", text) from None
    except msgspec.DecodeError as exc:
        raise invalid("body", f"Malformed JSON: {exc}") from None
    except UnicodeDecodeError:
        raise invalid("body", "The body is not valid UTF-8.") from None


def wrap(ep: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint for `ep`; the app's lifespan puts `gateway` and `apikeys` on its state."""
    decoder = msgspec.json.Decoder(ep.request) if ep.request else None
    encoder = msgspec.json.Encoder()
    latency = metrics.LATENCY.labels(ep.name)
    counters: dict[tuple[int, str], Any] = {}  # (status, code) -> its counter, made once

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        code = ""
        state = request.app.state
        try:
            key = None
            if not ep.public:
                key = await state.apikeys.authenticate(request.headers.get("authorization"))
                if not key.allows(ep.permissions):
                    raise ApiError(ErrorCode.FORBIDDEN)
            path = dict(request.path_params)
            for name, value in path.items():
                pattern = PATH_PARAMS.get(name)
                if pattern is not None and not pattern.fullmatch(value):
                    raise invalid(name, f"`{name}` is not a valid code.")
            body = None
            if decoder is not None:
                raw = await read_body(request)
                if raw.strip() == b"" and ep.body_optional:
                    raw = b"{}"
                body = decode(decoder, raw)
            reply = await ep.handler(Call(request, state.gateway, key, body, path))
            response = Response(encoder.encode(reply.body), reply.status, reply.headers, JSON)
        except ApiError as exc:
            code = str(exc.code)
            response = error_response(exc)
        except UNAVAILABLE as exc:
            log.warning("%s: Redis unavailable: %s", ep.name, type(exc).__name__)
            code = str(ErrorCode.SERVICE_UNAVAILABLE)
            response = error_response(ApiError(ErrorCode.SERVICE_UNAVAILABLE, retry_after=1))
        except Exception:
            log.exception("%s: unexpected error", ep.name)
            code = str(ErrorCode.INTERNAL_ERROR)
            response = error_response(ApiError(ErrorCode.INTERNAL_ERROR))
        counter = counters.get((response.status_code, code))
        if counter is None:
            counter = counters[(response.status_code, code)] = metrics.REQUESTS.labels(
                ep.name, str(response.status_code), code
            )
        counter.inc()
        latency.observe(time.perf_counter() - started)
        return response

    return endpoint
