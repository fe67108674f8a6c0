"""A back-office manager's day with the people who log in to the back office: Maria is given a
login and a first password, changes it, mistypes it, is locked out and comes back, works in a
session that ends when left alone, and is blocked; nothing secret is kept in clear on the way."""

from __future__ import annotations

import logging

import asyncpg
import pytest
from redis.asyncio import Redis

from gateway.auth.permissions import Permission as P
from gateway.operators import operators, sessions
from gateway.operators.operators import Operator
from gateway.platform.config import Settings
from gateway.platform.errors import ApiError, ErrorCode
from gateway.platform.services import Services
from tests import test_cli
from tests.checkout import Clock

cli_env = test_cli.cli_env
convenio = test_cli.convenio

MARIA = "maria.silva"
FINANCE = frozenset({P.CONVENIOS_READ, P.ADMIN})
NEW_PASSWORD = "cafe-com-pao-de-queijo"


async def refused(code: ErrorCode, coro) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await coro
    assert caught.value.code == code, caught.value
    return caught.value


@pytest.fixture
async def maria(svc: Services, ledger_url: str, clock: Clock) -> str:
    """Maria's login, created by the manager; returns her first password."""
    return await operators.create(svc, MARIA, FINANCE, by="cli:gerente")


async def test_a_new_operator_logs_in_with_her_first_password_and_must_change_it(svc, maria) -> None:
    maria_in = await operators.authenticate(svc, MARIA, maria)
    assert maria_in == Operator(MARIA, FINANCE, must_change_password=True, status="ACTIVE")
    # the login form may send her login as she typed it
    assert (await operators.authenticate(svc, "  Maria.Silva ", maria)).login == MARIA

    taken = await refused(ErrorCode.OPERATOR_EXISTS, operators.create(svc, MARIA, FINANCE, by="cli:gerente"))
    assert taken.status == 409
    for bad in ("Maria", "jo", "-joao", "joão", "a" * 65, "joao silva"):
        wrong = await refused(ErrorCode.INVALID_REQUEST, operators.create(svc, bad, FINANCE, by="cli:gerente"))
        assert wrong.extra["field"] == "login"

    # a new password of at least 10 characters, not the first one again
    for weak in ("curta", maria):
        e = await refused(ErrorCode.INVALID_REQUEST, operators.change_password(svc, MARIA, maria, weak))
        assert e.extra["field"] == "new_password"
    await refused(
        ErrorCode.OPERATOR_LOGIN_FAILED, operators.change_password(svc, MARIA, "not-hers-at-all", NEW_PASSWORD)
    )
    await operators.change_password(svc, MARIA, maria, NEW_PASSWORD)

    await refused(ErrorCode.OPERATOR_LOGIN_FAILED, operators.authenticate(svc, MARIA, maria))
    after = await operators.authenticate(svc, MARIA, NEW_PASSWORD)
    assert after.must_change_password is False
    assert await operators.listing(svc) == [after]


async def test_five_wrong_passwords_lock_her_login_for_15_minutes(svc, maria, clock) -> None:
    for _ in range(4):
        failed = await refused(ErrorCode.OPERATOR_LOGIN_FAILED, operators.authenticate(svc, MARIA, "senha-errada"))
        assert failed.status == 401
    locked = await refused(ErrorCode.OPERATOR_LOCKED, operators.authenticate(svc, MARIA, "senha-errada"))
    assert (locked.status, locked.extra["retry_after"]) == (423, 15 * 60)

    # the right password does not help while the lock runs
    clock.advance(14 * 60 + 59)
    still = await refused(ErrorCode.OPERATOR_LOCKED, operators.authenticate(svc, MARIA, maria))
    assert still.extra["retry_after"] == 1
    clock.advance(1)
    assert (await operators.authenticate(svc, MARIA, maria)).login == MARIA

    # a right password clears the count: four more mistakes do not lock her
    for _ in range(4):
        await refused(ErrorCode.OPERATOR_LOGIN_FAILED, operators.authenticate(svc, MARIA, "senha-errada"))
    assert (await operators.authenticate(svc, MARIA, maria)).login == MARIA


async def test_guesses_in_parallel_get_no_more_tries_than_one_after_another(svc, maria) -> None:
    import asyncio

    results = await asyncio.gather(
        *(operators.authenticate(svc, MARIA, f"guess-{i}") for i in range(8)), return_exceptions=True
    )
    codes = sorted(r.code for r in results if isinstance(r, ApiError))
    assert len(codes) == 8
    assert codes.count(ErrorCode.OPERATOR_LOGIN_FAILED) <= 4
    await refused(ErrorCode.OPERATOR_LOCKED, operators.authenticate(svc, MARIA, maria))


async def test_an_unknown_login_fails_exactly_like_a_wrong_password(svc, maria) -> None:
    wrong = await refused(ErrorCode.OPERATOR_LOGIN_FAILED, operators.authenticate(svc, MARIA, "senha-errada"))
    unknown = await refused(ErrorCode.OPERATOR_LOGIN_FAILED, operators.authenticate(svc, "joana", "senha-errada"))
    assert (unknown.status, unknown.message, unknown.extra) == (wrong.status, wrong.message, wrong.extra)
    # and is locked the same way, so a lockout does not tell which logins exist either
    for _ in range(3):
        await refused(ErrorCode.OPERATOR_LOGIN_FAILED, operators.authenticate(svc, "joana", "senha-errada"))
    last = await refused(ErrorCode.OPERATOR_LOCKED, operators.authenticate(svc, "joana", "senha-errada"))
    assert last.extra["retry_after"] == 15 * 60


async def test_her_session_ends_after_8_hours_unused_and_a_day_after_login(svc, maria, clock) -> None:
    me = await operators.authenticate(svc, MARIA, maria)
    token, opened = await sessions.open_session(svc, me)
    assert (opened.login, opened.permissions, opened.must_change_password) == (MARIA, FINANCE, True)
    assert opened.expires_at == clock.now + 8 * 3600 * 1000
    assert token not in opened.token_id and len(opened.csrf) >= 32

    found = await sessions.lookup(svc, token)
    assert found == opened
    assert sessions.actor(found) == "operator:maria.silva"
    assert sessions.allows(found, frozenset({P.ADMIN, P.CREDITS}))
    assert not sessions.allows(found, frozenset({P.CREDITS}))
    assert sessions.allows(found, frozenset())

    # each page she opens starts the 8 hours again, up to 24 hours after the login
    for _ in range(3):
        clock.advance(7 * 3600)
        assert await sessions.lookup(svc, token) is not None
    clock.advance(3 * 3600 - 1)  # 23:59:59 after the login
    assert await sessions.lookup(svc, token) is not None
    clock.advance(1)
    assert await sessions.lookup(svc, token) is None

    # left alone 8 hours, it ends
    token, _ = await sessions.open_session(svc, me)
    clock.advance(8 * 3600 - 1)
    assert await sessions.lookup(svc, token) is not None
    clock.advance(8 * 3600)
    assert await sessions.lookup(svc, token) is None

    # logging out ends it; unknown tokens are no session
    token, _ = await sessions.open_session(svc, me)
    await sessions.close(svc, token)
    assert await sessions.lookup(svc, token) is None
    assert await sessions.lookup(svc, "cvs_" + "x" * 43) is None
    assert await sessions.lookup(svc, "") is None
    await sessions.close(svc, token)  # again: nothing to do


async def test_blocking_her_ends_her_sessions_and_her_logins(svc, maria, ledger) -> None:
    me = await operators.authenticate(svc, MARIA, maria)
    tokens = [(await sessions.open_session(svc, me))[0] for _ in range(2)]
    blocked = await operators.set_status(svc, MARIA, operators.BLOCKED, by="cli:gerente")
    assert blocked.status == "BLOCKED"
    assert [await sessions.lookup(svc, t) for t in tokens] == [None, None]
    await refused(ErrorCode.OPERATOR_LOGIN_FAILED, operators.authenticate(svc, MARIA, maria))
    # a login that was checked just before the block gets no session after it
    await refused(ErrorCode.OPERATOR_LOGIN_FAILED, sessions.open_session(svc, me))

    await operators.set_status(svc, MARIA, operators.BLOCKED, by="cli:gerente")  # again: nothing new
    await operators.set_status(svc, MARIA, operators.ACTIVE, by="cli:gerente")
    assert (await operators.authenticate(svc, MARIA, maria)).status == "ACTIVE"
    await refused(ErrorCode.UNKNOWN_OPERATOR, operators.set_status(svc, "joana", operators.BLOCKED, by="cli:gerente"))
    await refused(ErrorCode.INVALID_REQUEST, operators.set_status(svc, MARIA, "GONE", by="cli:gerente"))

    rows = await ledger.fetch("SELECT actor, action, target, before, after FROM audit_log ORDER BY seq")
    assert [(r["actor"], r["action"], r["target"]) for r in rows] == [
        ("cli:gerente", "operator.created", "operator maria.silva"),
        ("cli:gerente", "operator.blocked", "operator maria.silva"),
        ("cli:gerente", "operator.unblocked", "operator maria.silva"),
    ]
    assert rows[1]["before"] == '{"status": "ACTIVE"}' and rows[1]["after"] == '{"status": "BLOCKED"}'


async def test_changing_her_password_ends_her_sessions(svc, maria, ledger) -> None:
    token, _ = await sessions.open_session(svc, await operators.authenticate(svc, MARIA, maria))
    await operators.change_password(svc, MARIA, maria, NEW_PASSWORD)
    assert await sessions.lookup(svc, token) is None
    row = await ledger.fetchrow("SELECT actor, action FROM audit_log WHERE action = 'operator.password_changed'")
    assert (row["actor"], row["action"]) == ("operator:maria.silva", "operator.password_changed")


async def test_a_forgotten_password_is_reset_to_a_new_first_one(svc, maria) -> None:
    await operators.change_password(svc, MARIA, maria, NEW_PASSWORD)
    token, _ = await sessions.open_session(svc, await operators.authenticate(svc, MARIA, NEW_PASSWORD))
    for _ in range(5):
        with pytest.raises(ApiError):
            await operators.authenticate(svc, MARIA, "esqueci-a-senha")

    again = await operators.reset_password(svc, MARIA, by="cli:gerente")
    assert again not in (maria, NEW_PASSWORD)
    assert await sessions.lookup(svc, token) is None
    await refused(ErrorCode.OPERATOR_LOGIN_FAILED, operators.authenticate(svc, MARIA, NEW_PASSWORD))
    # the reset lifted the lock too
    assert (await operators.authenticate(svc, MARIA, again)).must_change_password is True
    await refused(ErrorCode.UNKNOWN_OPERATOR, operators.reset_password(svc, "joana", by="cli:gerente"))


def test_the_form_token_and_the_cookie() -> None:
    s = sessions.Session("s1", MARIA, FINANCE, "c" * 43, False, 0)
    assert sessions.csrf_ok(s, "c" * 43)
    assert not sessions.csrf_ok(s, "c" * 42 + "d")
    assert not sessions.csrf_ok(s, "")
    assert not sessions.csrf_ok(s, "çççç")
    assert sessions.COOKIE_NAME == "cv_session"
    assert sessions.cookie_options(secure=True) == {
        "httponly": True,
        "samesite": "strict",
        "secure": True,
        "path": "/backoffice",
        "max_age": 24 * 3600,
    }
    assert sessions.cookie_options(secure=False)["secure"] is False


async def test_no_password_or_session_token_is_kept_in_clear(svc, ledger, clock, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    first = await operators.create(svc, MARIA, FINANCE, by="cli:gerente")
    token, session = await sessions.open_session(svc, await operators.authenticate(svc, MARIA, first))
    await operators.change_password(svc, MARIA, first, NEW_PASSWORD)
    again = await operators.reset_password(svc, MARIA, by="cli:gerente")
    with pytest.raises(ApiError):
        await operators.authenticate(svc, MARIA, "wrong-password-typed")
    secrets_ = [first, NEW_PASSWORD, again, token, "wrong-password-typed"]

    dumped = [r[0] for r in await ledger.fetch("SELECT row_to_json(o)::text FROM operators o")]
    dumped += [r[0] for r in await ledger.fetch("SELECT row_to_json(a)::text FROM audit_log a")]
    assert len(dumped) == 4 and '"pw_hash":"$argon2id$' in dumped[0]
    for text in [*dumped, caplog.text]:
        for secret in secrets_:
            assert secret not in text

    # Redis keeps the session under its token's digest, never the token
    keys = [k.decode() async for k in svc.redis.scan_iter(match=f"{svc.settings.key_prefix}:*op*")]
    values = []
    for k in keys:
        kind = (await svc.redis.type(k)).decode()
        values += [str(v) for v in (await svc.redis.hgetall(k)).values()] if kind == "hash" else []
        values += [str(v) for v in await svc.redis.smembers(k)] if kind == "set" else []
    for text in keys + values:
        assert token not in text and again not in text
    assert session.csrf  # the CSRF token is no credential: it is kept to compare the forms' with


async def test_the_cli_prints_a_first_password_alone_and_the_audit_log_names_who(cli_env) -> None:
    assert convenio(cli_env, "migrate").returncode == 0
    created = convenio(cli_env, "operator", "create", MARIA, "--permissions", "603,9000", "--by", "gerente")
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    assert len(lines) == 1 and len(lines[0]) >= 16
    first = lines[0]
    assert first not in created.stderr

    taken = convenio(cli_env, "operator", "create", MARIA, "--permissions", "603")
    assert taken.returncode == 1 and "already exists" in taken.stderr
    bad = convenio(cli_env, "operator", "create", "joana", "--permissions", "603,42")
    assert bad.returncode == 2 and "unknown permission" in bad.stderr
    listed = convenio(cli_env, "operator", "list")
    assert listed.stdout.split() == [MARIA, "603,9000", "ACTIVE", "(first", "password", "not", "changed", "yet)"]
    assert convenio(cli_env, "operator", "block", MARIA, "--by", "gerente").returncode == 0
    assert convenio(cli_env, "operator", "unblock", MARIA, "--by", "gerente").returncode == 0
    unknown = convenio(cli_env, "operator", "block", "joana")
    assert unknown.returncode == 1 and "No operator" in unknown.stderr

    # the printed password is hers: she logs in with it
    settings = Settings(
        redis_url=cli_env["REDIS_URL"],
        database_url=cli_env["DATABASE_URL"],
        key_prefix=cli_env["CONVENIO_KEY_PREFIX"],
        shards=4,
        pepper=cli_env["CONVENIO_PEPPER"].encode(),
        password_threads=1,
    )
    svc = Services(settings, Redis.from_url(settings.redis_url))
    try:
        assert (await operators.authenticate(svc, MARIA, first)).permissions == FINANCE
    finally:
        await svc.close()

    reset = convenio(cli_env, "operator", "reset-password", MARIA, "--by", "gerente")
    assert reset.returncode == 0 and len(reset.stdout.splitlines()) == 1 and reset.stdout.strip() != first

    conn = await asyncpg.connect(cli_env["DATABASE_URL"])
    try:
        rows = await conn.fetch("SELECT actor, action, target FROM audit_log ORDER BY seq")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [
        ("cli:gerente", "operator.created", "operator maria.silva"),
        ("cli:gerente", "operator.blocked", "operator maria.silva"),
        ("cli:gerente", "operator.unblocked", "operator maria.silva"),
        ("cli:gerente", "operator.password_reset", "operator maria.silva"),
    ]
