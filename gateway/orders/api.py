"""The HTTP endpoints of orders: what pays an order, and the ERP's order statuses."""

from __future__ import annotations

from gateway.auth.permissions import CREDIT_READ, Permission
from gateway.orders import order_status, orders
from gateway.orders.schemas import (
    OrderStatusBatch,
    OrderStatusParams,
    OrderStatusParamsView,
    OrderStatusReport,
    OrderView,
)
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.http.endpoint import Call, Endpoint, Link, Reply, who

E = ErrorCode
P = Permission


async def get_order(c: Call) -> Reply:
    return Reply(await orders.view(c.svc, c.path["order"]))


async def post_order_statuses(c: Call) -> Reply:
    # a cancelling status reverses sales: the key must also hold what a cancel needs (3186)
    assert c.key is not None
    if Permission.EMPENHO_CANCEL not in c.key.permissions:
        p = await order_status.params(c.svc)
        if any(item.status in p.cancel for item in c.body.orders):
            raise ApiError(
                ErrorCode.FORBIDDEN, "Posting a cancelling status (PC) needs permission 3186 as well as 3185."
            )
    return Reply(await order_status.process(c.svc, c.body))


async def get_order_status_params(c: Call) -> Reply:
    return Reply(await order_status.get_params(c.svc))


async def put_order_status_params(c: Call) -> Reply:
    return Reply(await order_status.set_params(c.svc, c.body, by=who(c)))


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/v1/orders/{order}",
        "order_get",
        "An order: every credit it used (reference, type, amount) and its convênio empenhos. An empenho of "
        "the last moments shows once the ledger has stored it.",
        get_order,
        OrderView,
        permissions=CREDIT_READ,
        tag="credits",
        errors=(E.UNKNOWN_ORDER, E.LEDGER_UNAVAILABLE),
    ),
    Endpoint(
        "POST",
        "/v1/orders/status",
        "order_status_post",
        "The ERP's order status changes, 1 to 500: a commit status commits the orders' pending holds, a "
        "cancel status cancels them; each order's result is reported, and posting again answers the same.",
        post_order_statuses,
        OrderStatusReport,
        permissions=frozenset({P.EMPENHO}),
        request=OrderStatusBatch,
        tag="credits",
        errors=(E.LEDGER_UNAVAILABLE,),
    ),
    Endpoint(
        "GET",
        "/v1/integration/order-status",
        "order_status_params_get",
        "The ERP order-status integration's parameters (by default PF commits, PC cancels, no balance update).",
        get_order_status_params,
        OrderStatusParamsView,
        permissions=frozenset({P.INTEGRATION}),
        tag="back-office",
    ),
    Endpoint(
        "PUT",
        "/v1/integration/order-status",
        "order_status_params_set",
        "Set which order statuses commit and which cancel an order's holds, and whether processing changes "
        "the convênio balance (the ERP's processamovimento, inativamovimento and alterasaldo).",
        put_order_status_params,
        OrderStatusParamsView,
        permissions=frozenset({P.INTEGRATION}),
        request=OrderStatusParams,
        tag="back-office",
        links=(Link("read", "order_status_params_get"),),
    ),
)
