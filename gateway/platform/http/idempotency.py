"""The Idempotency-Key header of an operation that places a hold: required, 1 to 128 visible ASCII
characters. Keys are scoped to the API key that sent them (see gateway/holds/lifecycle.py)."""

from __future__ import annotations

import re

from gateway.platform.http.endpoint import Call
from gateway.platform.http.params import invalid

_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
#: how /openapi.json describes the header (an Endpoint's `headers` entry)
HEADER = (
    "Idempotency-Key",
    "Client-chosen key, 1 to 128 visible characters; a retry with the same key and body replays the first answer.",
)


def idempotency_key(c: Call) -> str:
    value = c.request.headers.get("idempotency-key")
    if value is None or not _KEY.match(value):
        raise invalid("Idempotency-Key", "The Idempotency-Key header is required: 1 to 128 visible ASCII characters.")
    return value
