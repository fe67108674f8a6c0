"""The HTTP endpoints of customer credits, orders and order-status integration (issue 7)."""

from __future__ import annotations

from gateway.http import Endpoint

ENDPOINTS: tuple[Endpoint, ...] = ()
