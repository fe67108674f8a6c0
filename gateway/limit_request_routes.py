"""The HTTP endpoints of limit-change requests and the registry's change history (issue 7)."""

from __future__ import annotations

from gateway.http import Endpoint

ENDPOINTS: tuple[Endpoint, ...] = ()
