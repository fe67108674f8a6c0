"""The Idempotency-Key header of an operation that places a hold: required, 1 to 128 visible ASCII
characters. Keys are scoped to the API key that sent them (see gateway/holds/lifecycle.py)."""

from __future__ import annotations

import re

from gateway.platform.http.endpoint import Call, Param
from gateway.platform.http.params import invalid

_PATTERN = r"^[\x21-\x7e]{1,128}(?!\n)$"
_KEY = re.compile(_PATTERN)
#: how /openapi.json describes the header (an Endpoint's `headers` entry)
HEADER = Param(
    "Idempotency-Key",
    "Client-chosen key, 1 to 128 visible ASCII characters; a retry with the same key and body replays the "
    "first answer.",
    {"type": "string", "minLength": 1, "maxLength": 128, "pattern": _PATTERN},
)


def idempotency_key(c: Call) -> str:
    value = c.request.headers.get("idempotency-key")
    if value is None or not _KEY.fullmatch(value):
        raise invalid("Idempotency-Key", "The Idempotency-Key header is required: 1 to 128 visible ASCII characters.")
    return value
