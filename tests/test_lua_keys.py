"""Every key a script touches is one it declared in KEYS: a Redis Cluster requires it, and a
single server, which every other test runs against, does not check. So the scripts are run
strict (gateway/platform/redis/keycheck.py): the check itself is proved on toy scripts, every
real script must still load instrumented, and a whole checkout runs with CONVENIO_LUA_KEYCHECK=1."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from gateway.platform.config import Settings
from gateway.platform.redis import keycheck
from gateway.platform.redis.scripts import Scripts, names
from tests.checkout import Terminal

# one hash tag: on a cluster the toy keys share a slot, so only the check can refuse them
DECLARED, OTHER = "{kc}:declared", "{kc}:other"


@pytest.fixture
async def r(redis_url: str) -> AsyncIterator[aioredis.Redis | aioredis.RedisCluster]:
    cls = aioredis.RedisCluster if os.environ.get("CONVENIO_TEST_REDIS") == "cluster" else aioredis.Redis
    client = cls.from_url(redis_url)
    yield client
    await client.delete(DECLARED)
    await client.delete(OTHER)
    await client.aclose()


async def test_a_key_not_in_keys_is_refused(r) -> None:
    script = keycheck.instrument("#!lua\n-- toy\nreturn redis.call('GET', 'x' .. KEYS[1])\n")
    with pytest.raises(ResponseError, match=r"undeclared key x\{kc\}:declared in GET"):
        await r.eval(script, 1, DECLARED)
    script = keycheck.instrument("#!lua\n-- toy\nreturn redis.call('DEL', KEYS[1], ARGV[1])\n")
    with pytest.raises(ResponseError, match=r"undeclared key \{kc\}:other in DEL"):
        await r.eval(script, 1, DECLARED, OTHER)
    # pcall is checked too, and the message starts with the script's line that called it (4)
    script = keycheck.instrument(
        "#!lua\n-- toy\nlocal x = 1\nlocal v = redis.pcall('hset', ARGV[1], 'f', 1)\nreturn v\n"
    )
    with pytest.raises(ResponseError, match=r":4: undeclared key \{kc\}:other in HSET"):
        await r.eval(script, 1, DECLARED, OTHER)
    assert await r.exists(OTHER) == 0


async def test_only_declared_keys_work_and_keyless_commands_pass(r) -> None:
    script = keycheck.instrument(
        "#!lua\n-- toy\n"
        "redis.call('HSET', KEYS[1], 'f', ARGV[1])\n"
        "redis.call('DEL', KEYS[2], KEYS[2])\n"
        "local t = redis.call('TIME')\n"
        "return {redis.call('HGET', KEYS[1], 'f'), redis.call('EXISTS', KEYS[1], KEYS[2]), #t}\n"
    )
    assert await r.eval(script, 2, DECLARED, OTHER, "v") == [b"v", 1, 2]


async def test_a_command_the_check_does_not_know_is_refused(r) -> None:
    script = keycheck.instrument("#!lua\n-- toy\nreturn redis.call('RENAME', KEYS[1], KEYS[2])\n")
    with pytest.raises(ResponseError, match="keycheck does not know the keys of RENAME"):
        await r.eval(script, 2, DECLARED, OTHER)


async def test_every_script_loads_instrumented_with_its_line_numbers(r, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = Scripts(None)  # type: ignore[arg-type]  # no calls: only the texts are wanted
    monkeypatch.setenv("CONVENIO_LUA_KEYCHECK", "1")
    strict = Scripts(None)  # type: ignore[arg-type]
    assert set(strict._scripts) == set(names())
    for name, (sha, text) in strict._scripts.items():
        assert text.startswith("#!lua") and keycheck.PRELUDE in text, name
        assert text.count("\n") == plain._scripts[name][1].count("\n"), name
        assert sha != plain._scripts[name][0], name
    await strict.load(r)  # SCRIPT LOAD of every one, and Redis's SHA is the one hashed here


# -- a checkout, strict ----------------------------------------------------------------------------
@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Settings:
    """The suite's settings, with the scripts strict: set before `app` builds its Scripts."""
    monkeypatch.setenv("CONVENIO_LUA_KEYCHECK", "1")
    return settings


async def test_a_checkout_runs_with_every_script_strict(svc, seed: Terminal) -> None:
    sha, text = svc.scripts._scripts["empenho_hold"]
    assert keycheck.PRELUDE in text, "the app did not load the scripts strict"

    limit = await seed.limit()
    assert limit.status_code == 200, limit.text
    assert limit.json()["available"] == 11000
    checked = await seed.check_password()
    assert checked.status_code == 200 and checked.json()["valid"] is True, checked.text
    wrong = await seed.check_password(password="000000")
    assert wrong.status_code == 200 and wrong.json()["valid"] is False, wrong.text

    held = await seed.hold(5780, proof=checked.json()["proof"])
    assert held.status_code == 201, held.text
    sale = held.json()["id"]
    committed = await seed.commit(sale, coupon="CUPOM-5780")
    assert committed.status_code == 200, committed.text
    assert committed.json()["balance"] == 10000 - 5780

    other = await seed.hold(1000)
    assert other.status_code == 201, other.text
    cancelled = await seed.cancel(other.json()["id"], reason="desistência")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"

    returned = await seed.return_sale(sale, 1200, idempotency_key="DEV-KC-1")
    assert returned.status_code == 201, returned.text
    assert (returned.json()["returned"], returned.json()["returnable"]) == (1200, 4580)
    assert await seed.available() == 11000 - 5780 + 1200
