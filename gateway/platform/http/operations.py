"""The endpoints the people on call use, without a key: the process is up (/healthz), and Redis
answers and the ledger is not too far behind (/readyz)."""

from __future__ import annotations

from gateway.platform import metrics
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.http.edge import UNAVAILABLE
from gateway.platform.http.endpoint import Call, Endpoint, Reply
from gateway.platform.http.schemas import Health
from gateway.platform.streams import ledger_lag


async def healthz(c: Call) -> Reply:
    return Reply(Health(status="ok"))


async def readyz(c: Call) -> Reply:
    try:
        await c.svc.redis.ping()
        lag = await ledger_lag(c.svc)
    except UNAVAILABLE:
        raise ApiError(ErrorCode.SERVICE_UNAVAILABLE, "Redis is not reachable.") from None
    metrics.LEDGER_LAG.set(lag)
    bound = c.svc.settings.ledger_lag_max
    if lag > bound:
        raise ApiError(
            ErrorCode.SERVICE_UNAVAILABLE, f"The ledger is {lag} events behind (bound {bound}); is a writer running?"
        )
    return Reply(Health(status="ready", checks={"redis": "ok", "ledger_lag": str(lag)}))


ENDPOINTS = (
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
        errors=(ErrorCode.SERVICE_UNAVAILABLE,),
    ),
)
