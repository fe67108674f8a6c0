"""The endpoint table's routes dispatched straight to their endpoints.

Starlette's router tries each route's pattern in turn and wraps every call in its exception
middleware and request/response adapters; our endpoints (gateway/platform/http/edge.py `wrap`) already
turn every failure into the contract's JSON error, so for them that machinery only costs time
on every hold. This middleware matches (method, path) against the same patterns, in the same
order, and calls the endpoint itself. Anything it does not match (HEAD, an unknown path, a
wrong method, /openapi.json, /metrics) goes on to Starlette unchanged, with its 404 and 405; the
405's Allow header comes from `AllowedMethods` (Starlette's names only the first route that
matched the path, one method of the several the table may have there).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]


class FastPath:
    def __init__(self, app: ASGIApp, routes: list[tuple[str, str, Endpoint]]) -> None:
        self.app = app
        self._by_method: dict[str, list[tuple[re.Pattern[str], Endpoint]]] = {}
        for method, path, endpoint in routes:  # Starlette's order: the first full match wins
            self._by_method.setdefault(method, []).append((compile_path(path)[0], endpoint))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):  # mounted under a prefix: Starlette's job
            path = scope["path"]
            for pattern, endpoint in self._by_method.get(scope["method"], ()):
                match = pattern.match(path)
                if match is not None:
                    scope["path_params"] = match.groupdict()
                    response = await endpoint(Request(scope, receive))
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _specificity(path: str) -> tuple[int, ...]:
    """Sorts a concrete segment before a templated one (/v1/orders/status before /v1/orders/{order})."""
    return tuple(1 if "{" in segment else 0 for segment in path.split("/"))


class AllowedMethods:
    """The Allow header of a 405 (RFC 9110 section 15.5.6): every method of the table's path that a
    request's path names, HEAD wherever GET is (Starlette answers it). Where a concrete path and a
    templated one both match, the concrete one names the resource, as OpenAPI matches paths."""

    def __init__(self, routes: Iterable[tuple[str, str]]) -> None:
        by_path: dict[str, set[str]] = {}
        for method, path in routes:
            methods = by_path.setdefault(path, set())
            methods.add(method)
            if method == "GET":
                methods.add("HEAD")
        self._paths = [
            (compile_path(path)[0], ", ".join(sorted(methods)))
            for path, methods in sorted(by_path.items(), key=lambda item: _specificity(item[0]))
        ]

    def __call__(self, path: str) -> str | None:
        for pattern, allow in self._paths:
            if pattern.fullmatch(path):
                return allow
        return None
