"""Oversized request headers are refused with `431 HEADERS_TOO_LARGE`: in the app, exactly, for any
server; and in the server's HTTP protocol, before a head that never ends is buffered in memory."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.http.edge import error_response
from gateway.platform.http.endpoint import JSON

#: The most header bytes a request may carry: names and values plus ": " and CRLF for each line.
#: Bearer key, Idempotency-Key (≤ 128) and a client's usual headers take well under 2 KiB.
MAX_HEADER_BYTES = 16 * 1024
#: What the server reads of a head (request line and headers) still unfinished before refusing it:
#: the header limit plus room for a request line of up to 8 KiB.
MAX_HEAD_BYTES = MAX_HEADER_BYTES + 8 * 1024


def header_bytes(headers: Iterable[tuple[bytes, bytes]]) -> int:
    return sum(len(name) + len(value) + 4 for name, value in headers)


async def refused(scope: Scope, receive: Receive, send: Send) -> bool:
    """Whether the HTTP request `scope` has headers over MAX_HEADER_BYTES, and was answered 431 unread."""
    if header_bytes(scope["headers"]) <= MAX_HEADER_BYTES:
        return False
    refusal = ApiError(ErrorCode.HEADERS_TOO_LARGE, headers={"Connection": "close"})
    await error_response(refusal)(scope, receive, send)
    return True


class HeaderLimit:
    """ASGI middleware: a request whose headers exceed MAX_HEADER_BYTES is answered 431 unread."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and await refused(scope, receive, send):
            return
        await self.app(scope, receive, send)


def _refusal(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    message = f"The request line and headers are larger than {MAX_HEAD_BYTES // 1024} KiB."
    body = msgspec.json.encode(ApiError(ErrorCode.HEADERS_TOO_LARGE, message).body())
    lines = [STATUS_LINE[431]]
    lines += [name + b": " + value + b"\r\n" for name, value in default_headers]
    lines += [
        b"content-type: " + JSON.encode() + b"\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"connection: close\r\n\r\n",
        body,
    ]
    return b"".join(lines)


class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on an unfinished request head.

    Neither llhttp nor uvicorn limits a head: httptools keeps appending a header's value until its
    line ends, so a client trickling one endless header grows the worker's memory without bound
    (and re-copies it with every chunk, stalling the event loop). Here the bytes of every chunk
    read while a head is still unfinished are counted, and past MAX_HEAD_BYTES the request gets
    a 431 HEADERS_TOO_LARGE like the app's and the connection is closed. A chunk in which a head ends is not
    counted (it may also hold a body or the next request), so no head is refused for less than
    MAX_HEAD_BYTES, and none is buffered beyond that plus the two reads left out (uvloop reads ≤ 256 KB).
    """

    _head_pending = True  # from the end of a request (or the connection's start) to the end of the next head
    _head_ended = False  # a head ended in the chunk being parsed
    _head_bytes = 0
    _refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._head_ended = False
        super().data_received(data)
        if self._head_ended:
            self._head_bytes = 0
        elif self._head_pending and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse()

    def on_headers_complete(self) -> None:
        self._head_pending, self._head_ended = False, True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._head_pending = True
        super().on_message_complete()

    def _refuse(self) -> None:
        self._refused = True
        self.logger.warning("Request head over %d bytes refused (431).", MAX_HEAD_BYTES)
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # an earlier request's answer is still being written: no room for ours
            return
        self._unset_keepalive_if_required()
        self.transport.write(_refusal(self.server_state.default_headers))
        self.transport.close()
