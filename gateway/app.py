"""The Starlette application: routes from the endpoint table, operations endpoints, the
expiry sweeper, and contract-shaped answers for unknown paths and methods."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import metrics, openapi, sweeper
from gateway.apikeys import ApiKeyCache
from gateway.config import Settings
from gateway.core import Gateway
from gateway.errors import ApiError, ErrorCode
from gateway.fast_path import FastPath
from gateway.header_limit import HeaderLimit
from gateway.http import JSON, UNAVAILABLE, Call, Endpoint, Reply, error_response, wrap
from gateway.ledger_lag import ledger_lag
from gateway.routes import ENDPOINTS
from gateway.schemas import Health

log = logging.getLogger("convenio.app")

try:
    VERSION = version("convenio-gateway")
except PackageNotFoundError:  # running from a source tree
    VERSION = "0"


async def healthz(c: Call) -> Reply:
    return Reply(Health(status="ok"))


async def readyz(c: Call) -> Reply:
    try:
        await c.gw.redis.ping()
        lag = await ledger_lag(c.gw)
    except UNAVAILABLE:
        raise ApiError(ErrorCode.SERVICE_UNAVAILABLE, "Redis is not reachable.") from None
    metrics.LEDGER_LAG.set(lag)
    bound = c.gw.settings.ledger_lag_max
    if lag > bound:
        raise ApiError(
            ErrorCode.SERVICE_UNAVAILABLE, f"The ledger is {lag} events behind (bound {bound}); is a writer running?"
        )
    return Reply(Health(status="ready", checks={"redis": "ok", "ledger_lag": str(lag)}))


OPERATIONS = (
    Endpoint("GET", "/healthz", "healthz", "The process is up.", healthz, Health, public=True, tag="operations"),
    Endpoint(
        "GET",
        "/readyz",
        "readyz",
        "Redis is reachable and the ledger's lag is under its bound (CONVENIO_LEDGER_LAG_MAX).",
        readyz,
        Health,
        public=True,
        tag="operations",
    ),
)


def create_app(settings: Settings | None = None) -> Starlette:
    """Application factory (uvicorn --factory); settings come from the environment by default."""
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gateway = await Gateway.open(settings)
        app.state.gateway = gateway
        app.state.apikeys = ApiKeyCache(gateway)
        try:
            await gateway.start()
        except UNAVAILABLE as exc:
            # Start anyway: /readyz says not ready, requests get 503 until Redis answers.
            log.warning("Redis not reachable at start-up (%s); serving 503 until it is", exc)
        stopping = asyncio.Event()
        task = asyncio.create_task(sweeper.run(gateway, stopping))
        try:
            yield
        finally:
            stopping.set()
            done, _ = await asyncio.wait({task}, timeout=2)
            if not done:  # stuck in a Redis call: cancel, but never wait unbounded
                task.cancel()
                await asyncio.wait({task}, timeout=2)
            await gateway.close()

    endpoints = ENDPOINTS + OPERATIONS
    wrapped = [(ep, wrap(ep)) for ep in endpoints]
    routes = [Route(ep.path, fn, methods=[ep.method], name=ep.name) for ep, fn in wrapped]
    spec = msgspec.json.encode(openapi.document(endpoints, VERSION))

    async def openapi_json(request: Request) -> Response:
        return Response(spec, media_type=JSON)

    async def metrics_text(request: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    routes += [Route("/openapi.json", openapi_json), Route("/metrics", metrics_text)]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = ErrorCode.METHOD_NOT_ALLOWED if exc.status_code == 405 else ErrorCode.NOT_FOUND
        return error_response(ApiError(code))

    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(HeaderLimit),
            Middleware(FastPath, routes=[(ep.method, ep.path, fn) for ep, fn in wrapped]),
        ],
        exception_handlers={HTTPException: http_error},
    )
