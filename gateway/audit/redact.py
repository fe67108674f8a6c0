"""What an audit row may show of a record: everything but its secrets. A password, its hash, a
proof, a key or its digest, and a personal document in clear never reach `before` or `after`;
a document's masked form does (what the back office sees)."""

from __future__ import annotations

from typing import Any

#: names whose values are secret wherever they appear (a nested record's too)
SECRET_NAMES = frozenset(
    {
        "password",
        "password_hash",
        "pw_hash",
        "hash",
        "digest",
        "proof",
        "token",
        "secret",
        "integration_key",
        "idem",
        "fp",
    }
)


def secret(name: str) -> bool:
    lowered = name.lower()
    if lowered in SECRET_NAMES or lowered.endswith(("_hash", "_digest", "_token", "_secret")):
        return True
    # a document is being kept masked or encrypted: only the masked form may be shown
    return lowered.startswith("document") and "masked" not in lowered


def redact(value: Any) -> Any:
    """The value without any field whose name is secret, at any depth."""
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items() if not secret(str(k))}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
