"""The gateway's application: Starlette, with the endpoint table's routes dispatched straight to
their endpoints.

Starlette's router tries each route's pattern in turn, and every request goes through its error
middleware (which wraps `send`), our header limit, and request/response adapters; our endpoints
(gateway/platform/http/edge.py `wrap`) already turn every failure into the contract's JSON error
and can send their answer themselves, so for them that machinery only costs time on every hold.
`FastPathApp` matches (method, path) against the same patterns, in the same order, checks the
header limit itself, and calls the endpoint's ASGI form. Anything it does not match (HEAD, an
unknown path, a wrong method, /openapi.json, /metrics, the back office, the lifespan) goes on to
Starlette unchanged, with its 404 and 405; the 405's Allow header comes from `AllowedMethods`
(Starlette's names only the first route that matched the path, one method of the several the
table may have there).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.routing import compile_path
from starlette.types import Receive, Scope, Send

from gateway.platform.http.header_limit import refused

Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


class FastPathApp(Starlette):
    """Starlette (its `routes`, middleware, lifespan and state as given) with `fast`, (method,
    path, ASGI endpoint) in the order Starlette would match them: the first full match wins."""

    def __init__(self, fast: Sequence[tuple[str, str, Asgi]], **starlette: Any) -> None:
        super().__init__(**starlette)
        self._by_method: dict[str, list[tuple[re.Pattern[str], Asgi]]] = {}
        for method, path, endpoint in fast:
            self._by_method.setdefault(method, []).append((compile_path(path)[0], endpoint))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):  # mounted under a prefix: Starlette's job
            path = scope["path"]
            for pattern, endpoint in self._by_method.get(scope["method"], ()):
                match = pattern.match(path)
                if match is not None:
                    scope["app"] = self  # what Request.app (the state) reads, as Starlette sets it
                    if await refused(scope, receive, send):  # the header limit, as HeaderLimit would
                        return
                    scope["path_params"] = match.groupdict()
                    await endpoint(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


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
