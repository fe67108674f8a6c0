"""API keys: stored as SHA-256 digests, never in clear, each with its permission codes.

A key is `cvk_` + 43 random URL-safe characters: high entropy, so a plain digest is enough
to store it safely. Gateways cache a looked-up key briefly, so authentication costs no Redis
round trip on the hot path; a revocation takes effect within that cache time.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from gateway.auth.permissions import Permission
from gateway.platform.digests import digest
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.redis.keys import GLOBAL
from gateway.platform.services import Services


@dataclass(frozen=True)
class ApiKey:
    id: str
    permissions: frozenset[Permission]

    def allows(self, needed: frozenset[Permission]) -> bool:
        return not needed or bool(self.permissions & needed)


def key_id(token: str) -> str:
    return "k" + digest(token)[:15]


async def create(
    svc: Services, permissions: frozenset[Permission], name: str = "", token: str | None = None
) -> tuple[str, ApiKey]:
    """Register a new key (or the given token, for the demo) and return it in clear, once."""
    token = token or "cvk_" + secrets.token_urlsafe(32)
    d = digest(token)
    codes = ",".join(str(int(p)) for p in sorted(permissions))
    res = await svc.run(
        "apikey_create",
        [svc.keys.api_key(d), svc.keys.api_key_ids(), svc.keys.events(GLOBAL)],
        [svc.now_ms(), svc.protocol(), key_id(token), d, codes, name],
    )
    r = res["r"]
    perms = frozenset(Permission(int(c)) for c in r["permissions"].split(",") if c)
    return token, ApiKey(r["id"], perms)


async def revoke(svc: Services, kid: str) -> None:
    d = await svc.redis.hget(svc.keys.api_key_ids(), kid)
    if d is None:
        raise ApiError(ErrorCode.UNKNOWN_API_KEY)
    res = await svc.run(
        "apikey_revoke",
        [svc.keys.api_key(d.decode()), svc.keys.events(GLOBAL)],
        [svc.now_ms(), svc.protocol(), kid],
    )
    if not res["ok"]:
        raise ApiError(res["code"])


class ApiKeyCache:
    def __init__(self, svc: Services) -> None:
        self._svc = svc
        self._ttl = svc.settings.apikey_cache_s
        self._entries: dict[str, tuple[float, ApiKey | None]] = {}

    async def authenticate(self, authorization: str | None) -> ApiKey:
        # the scheme is case-insensitive (RFC 7235)
        if not authorization or authorization[:7].lower() != "bearer ":
            raise ApiError(ErrorCode.UNAUTHORIZED)
        token = authorization[7:].strip()
        if not token or len(token) > 256:
            raise ApiError(ErrorCode.UNAUTHORIZED)
        d = digest(token)
        now = time.monotonic()
        hit = self._entries.get(d)
        if hit is not None and hit[0] > now:
            key = hit[1]
        else:
            key = await self._lookup(d)
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[d] = (now + self._ttl, key)
        if key is None:
            raise ApiError(ErrorCode.UNAUTHORIZED)
        return key

    async def _lookup(self, d: str) -> ApiKey | None:
        kid, perms, revoked = await self._svc.redis.hmget(self._svc.keys.api_key(d), "id", "permissions", "revoked")
        if kid is None or revoked == b"1":
            return None
        codes = frozenset(Permission(int(c)) for c in perms.decode().split(",") if c)
        return ApiKey(kid.decode(), codes)
