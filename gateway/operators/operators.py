"""Who may log in to the back office, and checking a login.

An operator's password is stored as the participants' are (argon2id over an HMAC keyed with the
pepper, gateway/platform/passwords.py), checked on the hashing threads, never on the event loop.
A first password (from `create` or `reset_password`) is random and shown once; it must be changed
at the first login.

A wrong login and a wrong password are the same failure, with the same message, counted the same
way and costing the same argon2 verification, so the page cannot be used to learn which logins
exist. MAX_FAILURES failures of one login lock it for LOCK_S. Each attempt is counted in Redis
before its password is verified (a right one clears the count), so parallel guesses cannot get
past the limit while the first ones are still being hashed.
"""

from __future__ import annotations

import math
import re
import secrets

import asyncpg
from redis.asyncio.client import Pipeline

from gateway.audit import log as audit
from gateway.auth.permissions import Permission
from gateway.operators import sessions
from gateway.operators.queries import (
    FOR_LOGIN,
    INSERT,
    LISTING,
    SET_PASSWORD,
    SET_STATUS,
    STATUS_FOR_UPDATE,
    Operator,
    codes,
    permissions_of,
)
from gateway.platform.clock import utc
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.services import Services

ACTIVE, BLOCKED = "ACTIVE", "BLOCKED"
STATUSES = (ACTIVE, BLOCKED)
#: a login: lowercase letters, digits, '.', '_' and '-', 3 to 64 of them, a letter or digit first
LOGIN = re.compile(r"[a-z0-9][a-z0-9._-]{2,63}")
MAX_FAILURES = 5
LOCK_S = 15 * 60
MIN_PASSWORD = 10
#: longer is refused unchecked: the HMAC makes any length cost the same, but no one types this
MAX_PASSWORD = 1024


def _operator(row: asyncpg.Record) -> Operator:
    return Operator(row["login"], permissions_of(row["permissions"]), row["must_change_password"], row["status"])


def check_login(login: str) -> str:
    if not LOGIN.fullmatch(login):
        msg = "`login` is 3 to 64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit."
        raise ApiError(ErrorCode.INVALID_REQUEST, msg, field="login")
    return login


def first_password() -> str:
    """A random password for an operator's first login (96 bits)."""
    return secrets.token_urlsafe(12)


def _target(login: str) -> str:
    return f"operator {login}"


# -- the back-office manager's side --------------------------------------------------------------
async def create(svc: Services, login: str, permissions: frozenset[Permission], by: str) -> str:
    """Register an operator; return their first password, in clear, once."""
    check_login(login)
    password = first_password()
    pw_hash = await svc.passwords.hash(password)
    at = utc(svc.now_ms())
    async with svc.ledger.connection() as conn, conn.transaction():
        if await conn.fetchval(INSERT, login, codes(permissions), pw_hash, at, by) is None:
            raise ApiError(ErrorCode.OPERATOR_EXISTS)
        after = {
            "login": login,
            "permissions": codes(permissions),
            "status": ACTIVE,
            "must_change_password": True,
        }
        await audit.record(conn, actor=by, action="operator.created", target=_target(login), after=after, at=at)
    return password


async def listing(svc: Services) -> list[Operator]:
    """Every operator, by login."""
    return [_operator(row) for row in await svc.ledger.fetch(LISTING)]


async def set_status(svc: Services, login: str, status: str, by: str) -> Operator:
    """Block (every session of the operator ends) or unblock an operator; the same status again
    changes nothing and records nothing."""
    if status not in STATUSES:
        raise ApiError(ErrorCode.INVALID_REQUEST, "`status` is ACTIVE or BLOCKED.", field="status")
    at = utc(svc.now_ms())
    async with svc.ledger.connection() as conn, conn.transaction():
        row = await conn.fetchrow(STATUS_FOR_UPDATE, login)
        if row is None:
            raise ApiError(ErrorCode.UNKNOWN_OPERATOR)
        if row["status"] != status:
            before, after = {"status": row["status"]}, {"status": status}
            row = await conn.fetchrow(SET_STATUS, login, status, at)
            action = "operator.blocked" if status == BLOCKED else "operator.unblocked"
            await audit.record(conn, actor=by, action=action, target=_target(login), before=before, after=after, at=at)
    if status == BLOCKED:
        # after the commit: a session opened meanwhile sees BLOCKED (sessions.open_session)
        await sessions.close_all(svc, login)
    return _operator(row)


async def reset_password(svc: Services, login: str, by: str) -> str:
    """A new first password (shown once, to be changed at the next login); the operator's sessions
    end and a lockout is lifted."""
    password = first_password()
    pw_hash = await svc.passwords.hash(password)
    at = utc(svc.now_ms())
    async with svc.ledger.connection() as conn, conn.transaction():
        if await conn.fetchval(SET_PASSWORD, login, pw_hash, True, at) is None:
            raise ApiError(ErrorCode.UNKNOWN_OPERATOR)
        after = {"must_change_password": True}
        await audit.record(conn, actor=by, action="operator.password_reset", target=_target(login), after=after, at=at)
    await sessions.close_all(svc, login)
    await svc.redis.delete(svc.keys.operator_lockout(login))
    return password


# -- the operator's side --------------------------------------------------------------------------
async def authenticate(svc: Services, login: str, password: str) -> Operator:
    """The ACTIVE operator with this login and password; otherwise OPERATOR_LOGIN_FAILED (the same
    for a login that does not exist), or OPERATOR_LOCKED with `retry_after` seconds."""
    login = login.strip().lower()
    if not LOGIN.fullmatch(login) or not password or len(password) > MAX_PASSWORD:
        raise ApiError(ErrorCode.OPERATOR_LOGIN_FAILED)
    rows = await svc.ledger.fetch(FOR_LOGIN, login)
    attempt = await _count_attempt(svc, login)
    if rows:
        valid = await svc.passwords.verify(rows[0]["pw_hash"], password)
    else:
        await svc.passwords.verify(await _decoy(svc), password)
        valid = False
    if valid and rows[0]["status"] == ACTIVE:
        await svc.redis.delete(svc.keys.operator_lockout(login))
        return _operator(rows[0])
    if attempt >= MAX_FAILURES:
        raise _locked(*await _lock(svc, login))
    raise ApiError(ErrorCode.OPERATOR_LOGIN_FAILED)


async def change_password(svc: Services, login: str, old: str, new: str) -> None:
    """The operator's own new password, given the current one (a wrong one counts as a failed
    login); every session of the operator ends."""
    if len(new) < MIN_PASSWORD:
        msg = f"The new password needs at least {MIN_PASSWORD} characters."
        raise ApiError(ErrorCode.INVALID_REQUEST, msg, field="new_password")
    if len(new) > MAX_PASSWORD:
        msg = f"The new password has at most {MAX_PASSWORD} characters."
        raise ApiError(ErrorCode.INVALID_REQUEST, msg, field="new_password")
    if new == old:
        raise ApiError(
            ErrorCode.INVALID_REQUEST, "The new password must differ from the current one.", field="new_password"
        )
    operator = await authenticate(svc, login, old)
    pw_hash = await svc.passwords.hash(new)
    at = utc(svc.now_ms())
    async with svc.ledger.connection() as conn, conn.transaction():
        if await conn.fetchval(SET_PASSWORD, operator.login, pw_hash, False, at) is None:
            raise ApiError(ErrorCode.UNKNOWN_OPERATOR)
        await audit.record(
            conn,
            actor=sessions.actor_of(operator.login),
            action="operator.password_changed",
            target=_target(operator.login),
            after={"must_change_password": False},
            at=at,
        )
    await sessions.close_all(svc, operator.login)


# -- failed logins ----------------------------------------------------------------------------------
_DECOYS: dict[int, str] = {}


async def _decoy(svc: Services) -> str:
    """A hash no password matches, verified for a login that does not exist so that it costs what a
    wrong password costs."""
    key = id(svc.passwords)
    if key not in _DECOYS:
        _DECOYS[key] = await svc.passwords.hash(secrets.token_urlsafe(32))
    return _DECOYS[key]


def _locked(until: int, now: int) -> ApiError:
    retry_after = max(1, math.ceil((until - now) / 1000))
    return ApiError(ErrorCode.OPERATOR_LOCKED, retry_after=retry_after, headers={"Retry-After": str(retry_after)})


async def _count_attempt(svc: Services, login: str) -> int:
    """Count one more attempt of `login` not yet proven right, and return how many there are;
    OPERATOR_LOCKED while the login is locked, or when every allowed attempt is already in flight.
    The lock's end is kept in the hash (by the services' clock), its TTL only tidies up."""
    key = svc.keys.operator_lockout(login)
    lock_ms = LOCK_S * 1000
    now = svc.now_ms()

    async def step(pipe: Pipeline) -> tuple[int, int]:
        until_raw, failures_raw = await pipe.hmget(key, "locked_until", "failures")
        until = int(until_raw or 0)
        pipe.multi()
        if until > now:
            return 0, until
        failures = 0 if until else int(failures_raw or 0)  # a lock that has run out starts afresh
        if failures >= MAX_FAILURES:
            pipe.hset(key, mapping={"failures": failures, "locked_until": now + lock_ms})
            pipe.pexpire(key, lock_ms)
            return 0, now + lock_ms
        pipe.hset(key, mapping={"failures": failures + 1, "locked_until": 0})
        pipe.pexpire(key, lock_ms)
        return failures + 1, 0

    attempt, until = await svc.redis.transaction(step, key, value_from_callable=True)
    if until:
        raise _locked(until, now)
    return attempt


async def _lock(svc: Services, login: str) -> tuple[int, int]:
    key = svc.keys.operator_lockout(login)
    now = svc.now_ms()
    until = now + LOCK_S * 1000
    async with svc.redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, "locked_until", until)
        pipe.pexpire(key, LOCK_S * 1000)
        await pipe.execute()
    return until, now
