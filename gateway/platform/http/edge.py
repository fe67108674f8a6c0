"""The single wrapper every endpoint goes through: authenticate the caller, check the path
parameters, read and decode the body, call the handler, render its answer or the contract's
error body, and count it. No input may produce a 500: whatever escapes becomes one error code."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    ConnectionError,
    RedisClusterException,
    TimeoutError,
    TryAgainError,
)
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.platform import metrics
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.http.endpoint import JSON, Call, Caller, Endpoint
from gateway.platform.http.params import check_path, invalid, whole_number

log = logging.getLogger("convenio.http")

MAX_BODY = 64 * 1024
#: what a lost or unreachable Redis raises (the hot-path client raises redis-py's exceptions too);
#: on a cluster also a failover or a move under way, and redis-py's RedisCluster finding no node
#: that answers or a slot no node serves (it raises RedisClusterException for those)
UNAVAILABLE = (
    ConnectionError,
    TimeoutError,
    BusyLoadingError,
    OSError,
    ClusterDownError,
    TryAgainError,
    RedisClusterException,
)
_ENUM_VALUE = re.compile(r"^Invalid enum value .*?(?= - at `|$)", re.DOTALL)
_FIELD = re.compile(r"at `\$\.?([^`]*)`")
_NAMED = re.compile(r"(?:missing required|unknown) field `([^`]*)`")


def error_response(exc: ApiError) -> Response:
    return Response(msgspec.json.encode(exc.body()), exc.status, exc.headers, JSON)


def _refusal(exc: ApiError) -> tuple[int, bytes, dict[str, str]]:
    """An error's answer as `wrap`'s answers are: status, body, headers."""
    return exc.status, msgspec.json.encode(exc.body()), exc.headers


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not whole_number(declared) or int(declared) > MAX_BODY):
        if not whole_number(declared):
            raise invalid("Content-Length", "Content-Length must be a whole number.")
        raise ApiError(ErrorCode.BODY_TOO_LARGE)
    # the ASGI messages themselves (Request.stream's async generator costs every hold): a body
    # comes in one message or several, and a disconnect ends it as Starlette's would
    chunks, size = [], 0
    while True:
        message = await request.receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(ErrorCode.BODY_TOO_LARGE)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _whole_floats(value: Any) -> Any:
    """The value with every float that is a whole number (595.0, 1e3) as that integer."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_whole_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: _whole_floats(v) for k, v in value.items()}
    return value


def _as_integers(decoder: msgspec.json.Decoder, raw: bytes) -> Any:
    """JSON (and JSON Schema's "integer") has one number type: 595.0 is the integer 595, which
    msgspec refuses for an int field. Tried only once the body was refused; None if it is still
    refused then (no request field is a float, so nothing else can change)."""
    try:
        return msgspec.convert(_whole_floats(msgspec.json.decode(raw)), decoder.type)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None


def decode(decoder: msgspec.json.Decoder, raw: bytes) -> Any:
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        converted = _as_integers(decoder, raw)
        if converted is not None:
            return converted
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


@dataclass(frozen=True)
class Wrapped:
    """An endpoint served two ways: `endpoint`, Starlette's (a Request in, a Response out), and
    `asgi`, the same answer sent straight through the ASGI `send` (gateway/platform/http/fast_path.py
    calls it for the table's routes, without Starlette's router, middleware and Response)."""

    endpoint: Callable[[Request], Awaitable[Response]]
    asgi: Callable[[Scope, Receive, Send], Awaitable[None]]


_JSON_HEADER = (b"content-type", JSON.encode())


def wrap(ep: Endpoint, bind: Callable[[Caller, Any], Caller] | None = None) -> Wrapped:
    """`ep` served; the app's lifespan puts `services` and `apikeys` on its state.
    `bind(key, scope)`, given when terminals present client certificates (gateway/platform/http/tls.py),
    holds each authenticated key to the connection's certificate."""
    decoder = msgspec.json.Decoder(ep.request) if ep.request else None
    encoder = msgspec.json.Encoder()
    latency = metrics.LATENCY.labels(ep.name)
    counters: dict[tuple[int, str], Any] = {}  # (status, code) -> its counter, made once

    async def answer(request: Request) -> tuple[int, bytes, dict[str, str]]:
        """The status, body and headers of the answer to `request`, counted."""
        started = time.perf_counter()
        code = ""
        state = request.app.state
        try:
            key = None
            if not ep.public:
                key = await state.apikeys.authenticate(request.headers.get("authorization"))
                if bind is not None:
                    key = bind(key, request.scope)
                if not key.allows(ep.permissions):
                    raise ApiError(ErrorCode.FORBIDDEN)
            path = dict(request.path_params)
            check_path(path)
            body = None
            if decoder is not None:
                raw = await read_body(request)
                if raw.strip() == b"" and ep.body_optional:
                    raw = b"{}"
                body = decode(decoder, raw)
            reply = await ep.handler(Call(request, state.services, key, body, path))
            status, content, headers = reply.status, encoder.encode(reply.body), reply.headers
        except ApiError as exc:
            code = str(exc.code)
            status, content, headers = _refusal(exc)
        except UNAVAILABLE as exc:
            log.warning("%s: Redis unavailable: %s", ep.name, type(exc).__name__)
            code = str(ErrorCode.SERVICE_UNAVAILABLE)
            status, content, headers = _refusal(ApiError(ErrorCode.SERVICE_UNAVAILABLE, retry_after=1))
        except Exception:
            log.exception("%s: unexpected error", ep.name)
            code = str(ErrorCode.INTERNAL_ERROR)
            status, content, headers = _refusal(ApiError(ErrorCode.INTERNAL_ERROR))
        counter = counters.get((status, code))
        if counter is None:
            counter = counters[(status, code)] = metrics.REQUESTS.labels(ep.name, str(status), code)
        counter.inc()
        latency.observe(time.perf_counter() - started)
        return status, content, headers

    async def endpoint(request: Request) -> Response:
        status, content, headers = await answer(request)
        return Response(content, status, headers, JSON)

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        status, content, headers = await answer(Request(scope, receive))
        if status < 200 or status in (204, 304):  # no body, no length: Starlette's rules apply
            await Response(content, status, headers, JSON)(scope, receive, send)
            return
        raw = [_JSON_HEADER, (b"content-length", str(len(content)).encode())]
        if headers:
            raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": content})

    return Wrapped(endpoint, asgi)
