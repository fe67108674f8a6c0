"""The endpoint table's routes dispatched straight to their endpoints.

Starlette's router tries each route's pattern in turn and wraps every call in its exception
middleware and request/response adapters; our endpoints (gateway/http.py `wrap`) already
turn every failure into the contract's JSON error, so for them that machinery only costs time
on every hold. This middleware matches (method, path) against the same patterns, in the same
order, and calls the endpoint itself. Anything it does not match (HEAD, an unknown path, a
wrong method, /openapi.json, /metrics) goes on to Starlette unchanged, with its 404 and 405.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

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
