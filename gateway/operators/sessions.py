"""Back-office sessions: who is logged in, in Redis only.

The browser holds a random token in an HttpOnly, SameSite=Strict cookie; Redis holds only its
SHA-256 (as API keys are kept), with the operator's login, permission codes (as at the login),
a CSRF token for the session's forms and when it ends. A session ends after
CONVENIO_SESSION_TTL (8 h) unused, each lookup starting the count again, and in any case
MAX_AGE_S after its login, so a stolen cookie in constant use dies too. Its end is kept by the
services' clock; the Redis TTL only tidies up. Blocking an operator, resetting or changing their
password ends all their sessions.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from gateway.auth.permissions import Permission
from gateway.operators.queries import STATUS, Operator, codes, permissions_of
from gateway.platform.digests import digest
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.services import Services

COOKIE_NAME = "cv_session"
COOKIE_PATH = "/backoffice"
#: however busy, a session ends this long after its login (also the cookie's Max-Age)
MAX_AGE_S = 24 * 3600
#: a cookie longer than this is no token of ours: refused without a Redis round trip
_MAX_TOKEN = 256
_FIELDS = ("login", "permissions", "csrf", "must_change_password", "expires_at", "ends_at")


@dataclass(frozen=True)
class Session:
    token_id: str  # names the session (for logs and lists); not the token, nor enough to find it
    login: str
    permissions: frozenset[Permission]
    csrf: str
    must_change_password: bool
    expires_at: int  # ms: when it ends unless used before


def actor_of(login: str) -> str:
    """How the audit log names an operator acting through the back office."""
    return f"operator:{login}"


def actor(session: Session) -> str:
    return actor_of(session.login)


def allows(session: Session, needed: frozenset[Permission]) -> bool:
    """The same rule as an API key's: any one of the needed codes (nothing needed: anyone)."""
    return not needed or bool(session.permissions & needed)


def csrf_ok(session: Session, submitted: str) -> bool:
    """The form's CSRF token is the session's, compared in constant time."""
    return bool(submitted) and secrets.compare_digest(session.csrf.encode(), str(submitted).encode())


def cookie_options(secure: bool) -> dict[str, Any]:
    """Starlette's `set_cookie` options for COOKIE_NAME: unreadable to scripts, never sent by
    another site's page, over TLS only when served with it, to the back office only."""
    return {"httponly": True, "samesite": "strict", "secure": secure, "path": COOKIE_PATH, "max_age": MAX_AGE_S}


def token_id(token_digest: str) -> str:
    return "s" + token_digest[:15]


async def open_session(svc: Services, operator: Operator) -> tuple[str, Session]:
    """A new session of an authenticated operator: the token (for the cookie, returned once) and
    the session."""
    token = "cvs_" + secrets.token_urlsafe(32)
    d = digest(token)
    now = svc.now_ms()
    ttl_ms = svc.settings.session_ttl_s * 1000
    ends_at = now + MAX_AGE_S * 1000
    expires_at = min(now + ttl_ms, ends_at)
    session = Session(
        token_id(d),
        operator.login,
        operator.permissions,
        secrets.token_urlsafe(32),
        operator.must_change_password,
        expires_at,
    )
    record = {
        "login": session.login,
        "permissions": codes(session.permissions),
        "csrf": session.csrf,
        "must_change_password": "1" if session.must_change_password else "0",
        "expires_at": expires_at,
        "ends_at": ends_at,
    }
    key, mine = svc.keys.operator_session(d), svc.keys.operator_sessions(operator.login)
    async with svc.redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=record)
        pipe.pexpire(key, expires_at - now)
        pipe.sadd(mine, d)
        pipe.pexpire(mine, MAX_AGE_S * 1000)  # the newest session is the last to end
        await pipe.execute()
    # Written first, checked after: a block committed before this read is seen here, and one
    # committed after it finds this session in the operator's set and ends it.
    rows = await svc.ledger.fetch(STATUS, operator.login)
    if not rows or rows[0]["status"] != "ACTIVE":
        await close(svc, token)
        raise ApiError(ErrorCode.OPERATOR_LOGIN_FAILED)
    return token, session


async def lookup(svc: Services, token: str) -> Session | None:
    """The session of this cookie's token, its idle time started again; None when there is none
    (unknown, ended, or expired)."""
    if not token or len(token) > _MAX_TOKEN:
        return None
    d = digest(token)
    key = svc.keys.operator_session(d)
    values = await svc.redis.hmget(key, *_FIELDS)
    login, perms, csrf, must_change, expires_raw, ends_raw = (v.decode() if v is not None else "" for v in values)
    if not login:
        return None
    now = svc.now_ms()
    if int(expires_raw or 0) <= now:
        await _end(svc, login, [d])
        return None
    expires_at = min(now + svc.settings.session_ttl_s * 1000, int(ends_raw or 0))
    async with svc.redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, "expires_at", expires_at)
        pipe.pexpire(key, max(1, expires_at - now))
        await pipe.execute()
    return Session(token_id(d), login, permissions_of(perms), csrf, must_change == "1", expires_at)


async def close(svc: Services, token: str) -> None:
    """Log out: the session of this token ends (nothing happens when there is none)."""
    if not token or len(token) > _MAX_TOKEN:
        return
    d = digest(token)
    login = await svc.redis.hget(svc.keys.operator_session(d), "login")
    await _end(svc, login.decode() if login is not None else "", [d])


async def close_all(svc: Services, login: str) -> None:
    """Every session of the operator ends."""
    mine = svc.keys.operator_sessions(login)
    while True:
        # SPOP, not SMEMBERS then DEL: a session opened meanwhile is either taken here or stays listed
        popped = await svc.redis.spop(mine, 1000)
        if not popped:
            return
        await _end(svc, "", [d.decode() for d in popped])


async def _end(svc: Services, login: str, digests: list[str]) -> None:
    async with svc.redis.pipeline(transaction=False) as pipe:
        for d in digests:
            pipe.delete(svc.keys.operator_session(d))
            if login:
                pipe.srem(svc.keys.operator_sessions(login), d)
        await pipe.execute()
