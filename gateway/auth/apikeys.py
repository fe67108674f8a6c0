"""API keys: stored as SHA-256 digests, never in clear, each with its permission codes and its
scope: unscoped (back office, integrations), or scoped to one store and optionally one terminal
(a checkout's key acts for its store only: gateway/stores/scope.py).

A key is `cvk_` + 43 random URL-safe characters: high entropy, so a plain digest is enough
to store it safely. Gateways cache a looked-up key briefly, so authentication costs no Redis
round trip on the hot path; a revocation, or a rotated key's end of grace, takes effect within
that cache time. A key's lineage is the id of the first key it was rotated from (its own id when
never rotated): Idempotency-Keys and the ledger's `api_key_id` are scoped to it, so a terminal
that retries a request with its new key is never charged twice.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
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
    store: str | None = None
    terminal: str | None = None
    lineage: str = ""
    expires_at: int | None = None  # a rotated key's end of grace (ms)

    def allows(self, needed: frozenset[Permission]) -> bool:
        return not needed or bool(self.permissions & needed)

    @property
    def scope_id(self) -> str:
        return self.lineage or self.id


def _key(kid: str, perms: str, store: str = "", terminal: str = "", lineage: str = "", expires: str = "") -> ApiKey:
    codes = frozenset(Permission(int(c)) for c in perms.split(",") if c)
    return ApiKey(kid, codes, store or None, terminal or None, lineage or kid, int(expires) if expires else None)


def key_id(token: str) -> str:
    return "k" + digest(token)[:15]


def new_token() -> str:
    return "cvk_" + secrets.token_urlsafe(32)


async def create(
    svc: Services,
    permissions: frozenset[Permission],
    name: str = "",
    token: str | None = None,
    store: str | None = None,
    terminal: str | None = None,
    by: str = "",
) -> tuple[str, ApiKey]:
    """Register a new key (or the given token, for the demo) and return it in clear, once. The
    caller has checked that the store (and terminal) exist (gateway/stores)."""
    token = token or new_token()
    d = digest(token)
    codes = ",".join(str(int(p)) for p in sorted(permissions))
    res = await svc.run(
        "apikey_create",
        [svc.keys.api_key(d), svc.keys.api_key_ids(), svc.keys.events(GLOBAL)],
        [svc.now_ms(), svc.protocol(), key_id(token), d, codes, name, store or "", terminal or "", by],
    )
    r = res["r"]
    return token, _key(r["id"], r["permissions"], r["store"], r["terminal"], r["lineage"])


async def _digest_of(svc: Services, kid: str) -> str:
    d = await svc.redis.hget(svc.keys.api_key_ids(), kid)
    if d is None:
        raise ApiError(ErrorCode.UNKNOWN_API_KEY)
    return d.decode()


async def revoke(svc: Services, kid: str, by: str = "") -> None:
    d = await _digest_of(svc, kid)
    res = await svc.run(
        "apikey_revoke",
        [svc.keys.api_key(d), svc.keys.events(GLOBAL)],
        [svc.now_ms(), svc.protocol(), kid, by],
    )
    if not res["ok"]:
        raise ApiError(res["code"])


async def rotate(svc: Services, kid: str, grace_s: int, by: str = "") -> tuple[str, ApiKey, int]:
    """A new key for the key `kid`: the same permissions, name and scope and lineage; the old one
    works `grace_s` seconds more. Returns the new key in clear (once), and the old one's end."""
    old = await _digest_of(svc, kid)
    token = new_token()
    now = svc.now_ms()
    res = await svc.run(
        "apikey_rotate",
        [svc.keys.api_key(old), svc.keys.api_key(digest(token)), svc.keys.api_key_ids(), svc.keys.events(GLOBAL)],
        [now, svc.protocol(), kid, key_id(token), digest(token), now + grace_s * 1000, by],
    )
    if not res["ok"]:
        raise ApiError(res["code"])
    r = res["r"]
    return token, _key(r["id"], r["permissions"], r["store"], r["terminal"], r["lineage"]), r["previous_expires_at"]


@dataclass(frozen=True)
class KeyInfo:
    """What `apikey list` shows of a key: never the key, nor its digest."""

    id: str
    name: str
    permissions: str
    store: str
    terminal: str
    lineage: str
    created_at: int
    last_used_at: int | None
    revoked_at: int | None
    expires_at: int | None


async def listing(svc: Services) -> list[KeyInfo]:
    """Every key Redis knows, oldest first."""
    ids = await svc.redis.hgetall(svc.keys.api_key_ids())
    fields = (
        "id",
        "name",
        "permissions",
        "store",
        "terminal",
        "lineage",
        "created_at",
        "last_used_at",
        "revoked_at",
        "expires_at",
        "revoked",
    )
    async with svc.redis.pipeline(transaction=False) as pipe:
        for d in ids.values():
            pipe.hmget(svc.keys.api_key(d.decode()), *fields)
        rows = await pipe.execute()
    found = []
    for row in rows:
        v = dict(zip(fields, (x.decode() if x is not None else None for x in row), strict=True))
        if v["id"] is None:
            continue

        def ms(name: str, v: dict = v) -> int | None:
            return int(v[name]) if v[name] else None

        found.append(
            KeyInfo(
                id=v["id"],
                name=v["name"] or "",
                permissions=v["permissions"] or "",
                store=v["store"] or "",
                terminal=v["terminal"] or "",
                lineage=v["lineage"] or v["id"],
                created_at=int(v["created_at"] or 0),
                last_used_at=ms("last_used_at"),
                revoked_at=ms("revoked_at") if v["revoked"] == "1" else None,
                expires_at=ms("expires_at"),
            )
        )
    return sorted(found, key=lambda k: (k.created_at, k.id))


class KeyCache:
    """A bearer key checked: the header read, the key found by its digest (`_lookup`) and kept
    `ttl_s` in this process, an expired one refused. `now_ms` is the clock expiry reads."""

    def __init__(self, ttl_s: float, now_ms: Callable[[], int]) -> None:
        self._ttl = ttl_s
        self._now_ms = now_ms
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
        if key is None or (key.expires_at is not None and key.expires_at <= self._now_ms()):
            raise ApiError(ErrorCode.UNAUTHORIZED)
        return key

    async def _lookup(self, d: str) -> ApiKey | None:
        raise NotImplementedError


class ApiKeyCache(KeyCache):
    """The gateway's keys, in Redis (each lookup stamps when the key was last used)."""

    def __init__(self, svc: Services) -> None:
        super().__init__(svc.settings.apikey_cache_s, svc.now_ms)
        self._svc = svc

    async def _lookup(self, d: str) -> ApiKey | None:
        record = self._svc.keys.api_key(d)
        found = await self._svc.redis.hmget(
            record, "id", "permissions", "revoked", "store", "terminal", "lineage", "expires_at"
        )
        kid, perms, revoked, *scope = (v.decode() if v is not None else "" for v in found)
        if not kid or revoked == "1":
            return None
        # when it was last used, to within the cache time (what `apikey list` shows)
        await self._svc.redis.hset(record, "last_used_at", self._svc.now_ms())
        return _key(kid, perms, *scope)
