"""The composition root of the gateway: the endpoint table, assembled from each feature's `api`
module in the order below, the Starlette application around it, and the background tasks every
worker runs: the expiry sweeper, and the refunds of returns whose credit was never made.

Nothing registers itself: an endpoint exists because its feature's ENDPOINTS is listed here."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, get_route_path

from gateway.audit import api as audit_api
from gateway.auth import api as auth_api
from gateway.auth.apikeys import ApiKeyCache
from gateway.backoffice import routes as backoffice
from gateway.credits import api as credits_api
from gateway.decisions import api as decisions_api
from gateway.holds import api as holds_api
from gateway.holds import sweeper
from gateway.orders import api as orders_api
from gateway.platform import metrics
from gateway.platform.config import Settings
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.http import openapi, operations, tls
from gateway.platform.http.edge import UNAVAILABLE, error_response, wrap
from gateway.platform.http.endpoint import JSON, Endpoint
from gateway.platform.http.fast_path import AllowedMethods, FastPathApp
from gateway.platform.http.header_limit import HeaderLimit
from gateway.platform.services import Services
from gateway.registry import api as registry_api
from gateway.returns import api as returns_api
from gateway.returns import refunds
from gateway.stores import api as stores_api
from ledger.month import api as duplicatas_api
from ledger.reconciliation import api as reconciliation_api

log = logging.getLogger("convenio.app")

try:
    VERSION = version("convenio-gateway")
except PackageNotFoundError:  # running from a source tree
    VERSION = "0"

#: every endpoint a key may call, in the order routes are matched and /openapi.json lists them
ENDPOINTS: tuple[Endpoint, ...] = (
    *holds_api.ENDPOINTS,
    *returns_api.ENDPOINTS,
    *auth_api.ENDPOINTS,
    *decisions_api.ENDPOINTS,
    *registry_api.ENDPOINTS,
    *stores_api.ENDPOINTS,
    *duplicatas_api.ENDPOINTS,
    *reconciliation_api.ENDPOINTS,
    *credits_api.ENDPOINTS,
    *orders_api.ENDPOINTS,
    *audit_api.ENDPOINTS,
)
#: and those of the people on call, without a key
OPERATIONS: tuple[Endpoint, ...] = operations.ENDPOINTS


def create_app(settings: Settings | None = None) -> FastPathApp:
    """Application factory (uvicorn --factory); settings come from the environment by default."""
    settings = settings or Settings.from_env()
    settings.secret_pepper()  # the gateway checks passwords: refuse to start without the pepper

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await Services.open(settings)
        app.state.services = services
        app.state.apikeys = ApiKeyCache(services)
        try:
            await services.start()
        except UNAVAILABLE as exc:
            # Start anyway: /readyz says not ready, requests get 503 until Redis answers.
            log.warning("Redis not reachable at start-up (%s); serving 503 until it is", exc)
        stopping = asyncio.Event()
        tasks = {
            asyncio.create_task(sweeper.run(services, stopping)),
            asyncio.create_task(refunds.run(services, stopping)),
        }
        try:
            yield
        finally:
            stopping.set()
            _, stuck = await asyncio.wait(tasks, timeout=2)
            if stuck:  # stuck in a Redis call: cancel, but never wait unbounded
                for task in stuck:
                    task.cancel()
                await asyncio.wait(stuck, timeout=2)
            await services.close()

    endpoints = ENDPOINTS + OPERATIONS
    bind = tls.bind if settings.tls_client_ca else None  # keys held to the terminals' certificates
    wrapped = [(ep, wrap(ep, bind)) for ep in endpoints]
    routes = [Route(ep.path, fn.endpoint, methods=[ep.method], name=ep.name) for ep, fn in wrapped]
    spec = msgspec.json.encode(openapi.document(endpoints, VERSION))

    async def openapi_json(request: Request) -> Response:
        return Response(spec, media_type=JSON)

    async def metrics_text(request: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    documents = [Route("/openapi.json", openapi_json), Route("/metrics", metrics_text)]  # GET (and HEAD) only
    routes += documents
    routes.append(Mount("/backoffice", routes=backoffice.routes()))  # operators' pages: sessions, not keys
    allowed = AllowedMethods([(ep.method, ep.path) for ep in endpoints] + [("GET", r.path) for r in documents])

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # every method the path has, not only those of the first route Starlette tried
            headers["Allow"] = allowed(get_route_path(request.scope)) or headers.get("Allow", "")
        code = ErrorCode.METHOD_NOT_ALLOWED if exc.status_code == 405 else ErrorCode.NOT_FOUND
        return error_response(ApiError(code, headers=headers))

    return FastPathApp(
        [(ep.method, ep.path, fn.asgi) for ep, fn in wrapped],
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(HeaderLimit)],
        exception_handlers={HTTPException: http_error},
    )


def main(argv: list[str] | None = None) -> None:
    """Serve the gateway with uvicorn (what `convenio serve` starts, its settings, TLS's too, in
    this process's environment)."""
    parser = argparse.ArgumentParser(prog="gateway.app", description="Serve the convênio gateway.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        # httptools bounds no request head; this subclass refuses one past 24 KiB (431), see header_limit;
        # with a client CA, its subclass also passes the client certificate's store to the app (tls)
        http=tls.protocol(settings),
        ssl_context_factory=tls.context_factory if settings.tls_cert else None,  # HTTPS, when set
        access_log=False,
        proxy_headers=False,  # no client address is used; uvicorn's middleware would cost every request
        log_level=args.log_level,
    )
