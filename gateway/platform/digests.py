"""What we store instead of a high-entropy secret (an API key, a password proof, an
Idempotency-Key): its SHA-256. A secret a person chose is keyed with the pepper instead
(gateway/platform/passwords.py, gateway/auth/integration.py)."""

from __future__ import annotations

import hashlib


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
