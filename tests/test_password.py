"""The password check: lockout after repeated failures, and the single-use proof that a hold
must present (bound to its convênio and participant, short-lived)."""

import asyncio

import pytest

from tests.checkout import Clock, Terminal, assert_error


async def test_a_wrong_password_says_how_many_attempts_are_left(seed: Terminal, svc) -> None:
    r = await seed.check_password("000000" if seed.password != "000000" else "111111")
    assert r.status_code == 200
    assert r.json()["valid"] is False
    assert r.json()["attempts_left"] == svc.settings.password_max_failures - 1
    assert "proof" not in r.json()


async def test_repeated_guessing_locks_the_participant(seed: Terminal, svc, clock: Clock) -> None:
    wrong = "999999" if seed.password != "999999" else "888888"
    attempts = svc.settings.password_max_failures
    answers = [await seed.check_password(wrong) for _ in range(attempts)]
    assert [a.json()["attempts_left"] for a in answers] == list(range(attempts - 1, -1, -1))
    locked = await seed.check_password()  # even the right password, now
    assert locked.status_code == 423
    assert locked.json()["error"]["code"] == "PASSWORD_LOCKED"
    assert 0 < locked.json()["error"]["retry_after"] <= svc.settings.password_lock_s
    clock.advance(svc.settings.password_lock_s + 1)
    assert (await seed.check_password()).json()["valid"] is True


async def test_a_burst_of_parallel_guesses_cannot_exceed_the_allowed_failures(seed: Terminal, svc) -> None:
    wrong = "999999" if seed.password != "999999" else "888888"
    answers = await asyncio.gather(*(seed.check_password(wrong) for _ in range(20)))
    verified = [a for a in answers if a.status_code == 200]
    assert len(verified) == svc.settings.password_max_failures
    # the rest waited for those in progress (429) or came after they locked it (423)
    assert all(a.status_code in (423, 429) for a in answers if a.status_code != 200)
    assert (await seed.check_password()).status_code == 423


async def test_parallel_checks_of_the_right_password_never_lock_the_participant(seed: Terminal, svc) -> None:
    answers = await asyncio.gather(*(seed.check_password() for _ in range(3 * svc.settings.password_max_failures)))
    assert {a.status_code for a in answers} <= {200, 429}, [a.text for a in answers]
    assert all(a.json()["valid"] for a in answers if a.status_code == 200)
    assert (await seed.check_password()).json()["valid"] is True


async def test_checks_whose_verdict_never_came_are_not_failures(seed: Terminal, svc, clock: Clock) -> None:
    # a gateway worker killed (or Redis lost) between opening a check and recording its verdict
    from gateway.auth.password_check import CHECK_STALE_MS, attempt_call, find

    s = svc.settings
    found = await find(svc, seed.convenio, seed.participant)
    for _ in range(s.password_max_failures):
        keys, args = attempt_call(svc, seed.convenio, seed.participant, svc.protocol(), found)
        opened = await svc.run("password_attempt", keys, args)
        assert opened["ok"], opened
    busy = await seed.check_password()  # while they might still be running, the next one waits
    assert busy.status_code == 429 and busy.json()["error"]["code"] == "PASSWORD_CHECK_BUSY", busy.text
    assert busy.json()["error"]["retry_after"] >= 1
    clock.advance(CHECK_STALE_MS / 1000 + 1)
    assert (await seed.check_password()).json()["valid"] is True
    wrong = "999999" if seed.password != "999999" else "888888"
    assert (await seed.check_password(wrong)).json()["attempts_left"] == s.password_max_failures - 1


async def test_guesses_in_flight_when_the_lock_falls_are_told_none_are_left(
    seed: Terminal, svc, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "999999" if seed.password != "999999" else "888888"
    guesses = svc.settings.password_max_failures
    # every guess is in flight (its check opened) before the first verdict, however slowly the
    # machine runs the others: the hash check of each waits for all of them to get there
    in_flight, all_in_flight = 0, asyncio.Event()
    verify = svc.passwords.verify

    async def verify_once_all_are_in_flight(stored_hash: str, password: str) -> bool:
        nonlocal in_flight
        in_flight += 1
        if in_flight == guesses:
            all_in_flight.set()
        await asyncio.wait_for(all_in_flight.wait(), 10)
        return await verify(stored_hash, password)

    monkeypatch.setattr(svc.passwords, "verify", verify_once_all_are_in_flight)
    answers = await asyncio.gather(*[seed.check_password(wrong) for _ in range(guesses)])
    bodies = [a.json() for a in answers if a.status_code == 200]
    # the last allowed failure locks; no answer may promise attempts the lock already took away
    assert all(b["valid"] is False and b["attempts_left"] == 0 for b in bodies), bodies
    assert (await seed.check_password()).status_code == 423


async def test_a_right_password_resets_the_failure_count(seed: Terminal, svc) -> None:
    wrong = "999999" if seed.password != "999999" else "888888"
    for _ in range(svc.settings.password_max_failures - 1):
        await seed.check_password(wrong)
    assert (await seed.check_password()).json()["valid"] is True
    assert (await seed.check_password(wrong)).json()["attempts_left"] == svc.settings.password_max_failures - 1


async def test_the_wrong_integration_key_is_refused(seed: Terminal) -> None:
    r = await seed.check_password(integration_key="not-the-key")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "INTEGRATION_KEY_INVALID"


async def test_a_hold_needs_a_proof(seed: Terminal) -> None:
    r = await seed.hold(578, proof=None)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "PASSWORD_PROOF_REQUIRED"
    r = await seed.hold(578, proof="made-up")
    assert r.json()["error"]["code"] == "PASSWORD_PROOF_INVALID"
    assert (await seed.available()) == 11000


async def test_a_proof_is_single_use(seed: Terminal) -> None:
    proof = await seed.proof()
    assert (await seed.hold(578, proof=proof)).status_code == 201
    reuse = await seed.hold(578, proof=proof)
    assert reuse.status_code == 422
    assert reuse.json()["error"]["code"] == "PASSWORD_PROOF_INVALID"
    assert (await seed.available()) == 11000 - 578


async def test_a_declined_hold_does_not_spend_the_proof(seed: Terminal) -> None:
    proof = await seed.proof()
    assert (await seed.hold(50000, proof=proof)).json()["error"]["code"] == "INSUFFICIENT_LIMIT"
    assert (await seed.hold(578, proof=proof)).status_code == 201


async def test_a_proof_expires(seed: Terminal, clock: Clock, svc) -> None:
    proof = await seed.proof()
    clock.advance(svc.settings.proof_ttl_s + 1)
    r = await seed.hold(578, proof=proof)
    assert r.json()["error"]["code"] == "PASSWORD_PROOF_INVALID"


async def test_a_proof_is_bound_to_its_participant_and_convenio(seed: Terminal, backoffice) -> None:
    await backoffice.add_participant("EMP001", "CLI002", limit=5000, password="4321")
    proof_of_cli001 = await seed.proof()
    someone_else = seed.as_participant("EMP001", "CLI002", "4321")
    r = await someone_else.hold(100, proof=proof_of_cli001)
    assert r.json()["error"]["code"] == "PASSWORD_PROOF_INVALID"

    await backoffice.create_convenio("EMP002", total_limit=20000)
    await backoffice.add_participant("EMP002", "CLI001", limit=5000, password="4321")
    same_customer_other_convenio = seed.as_participant("EMP002", "CLI001", "4321")
    r = await same_customer_other_convenio.hold(100, proof=proof_of_cli001)
    assert r.json()["error"]["code"] == "PASSWORD_PROOF_INVALID"
    # and the proof still works where it belongs
    assert (await seed.hold(100, proof=proof_of_cli001)).status_code == 201


async def test_a_participant_without_password_cannot_be_checked(seed: Terminal, backoffice) -> None:
    await backoffice.add_participant("EMP001", "SEMSENHA", limit=100)
    r = await seed.check_password("1234", participant="SEMSENHA")
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "PASSWORD_NOT_SET"


async def test_a_lookalike_code_with_a_trailing_newline_is_no_code(seed: Terminal, backoffice) -> None:
    """'CLI001\\n' must not exist beside CLI001: its proof would read like CLI001's."""
    r = await backoffice.client.post(
        "/v1/convenios/EMP001/participants",
        json={"code": "CLI001\n", "name": "IMPOSTOR", "limit": 0, "password": "9999"},
        headers=backoffice.headers,
    )
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "code"
    path = await seed.client.get("/v1/convenios/EMP001/participants/CLI001%0A/limit", headers=seed.headers)
    assert path.status_code == 422
    sale = seed.sale(100, await seed.proof())
    r = await seed.hold(100, body={**sale, "participant": "CLI001\n"})
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "participant"


async def test_a_check_slower_than_the_stale_window_gives_no_proof_but_a_wrong_one_still_counts(
    seed: Terminal, svc, clock: Clock, monkeypatch
) -> None:
    # a machine so loaded that the hash took longer than a check may stay open: the verdict
    # came after the check stopped counting, so a right password must not pay off
    from gateway.auth.password_check import CHECK_STALE_MS

    real = svc.passwords.verify

    async def slow(stored_hash: str, password: str) -> bool:
        clock.advance(CHECK_STALE_MS / 1000 + 1)
        return await real(stored_hash, password)

    monkeypatch.setattr(svc.passwords, "verify", slow)
    late = await seed.check_password()
    error = assert_error(late, 503, "PASSWORD_CHECK_TIMEOUT")
    assert error["retry_after"] == 1 and "proof" not in late.text
    wrong = "999999" if seed.password != "999999" else "888888"
    assert (await seed.check_password(wrong)).json()["attempts_left"] == svc.settings.password_max_failures - 1
    monkeypatch.setattr(svc.passwords, "verify", real)
    assert (await seed.check_password()).json()["valid"] is True


# -- one lockout per customer, across all their convênios -------------------------------------
async def same_customer_in_three_convenios(seed: Terminal, backoffice) -> list[Terminal]:
    """CLI001 of the worked example also buys on EMP002 and EMP003, with the same PIN."""
    for code in ("EMP002", "EMP003"):
        await backoffice.create_convenio(code, total_limit=20000)
        await backoffice.add_participant(code, "CLI001", limit=5000, password=seed.password)
    return [seed] + [seed.as_participant(code, "CLI001", seed.password) for code in ("EMP002", "EMP003")]


def wrong_pin(seed: Terminal) -> str:
    return "999999" if seed.password != "999999" else "888888"


async def test_five_wrong_guesses_spread_over_three_convenios_lock_the_customer_on_all(
    seed: Terminal, backoffice, svc, clock: Clock
) -> None:
    cards = await same_customer_in_three_convenios(seed, backoffice)
    await backoffice.add_participant("EMP002", "CLI002", limit=5000, password="4321")
    attempts = svc.settings.password_max_failures
    answers = [await cards[n % 3].check_password(wrong_pin(seed)) for n in range(attempts)]
    # one count for the customer, whichever convênio each guess named
    assert [a.json()["attempts_left"] for a in answers] == list(range(attempts - 1, -1, -1))
    for card in cards:  # even the right password, on any of them
        error = assert_error(await card.check_password(), 423, "PASSWORD_LOCKED")
        assert 0 < error["retry_after"] <= svc.settings.password_lock_s
    # another customer of the same convênio is not locked out with CLI001
    assert (await seed.as_participant("EMP002", "CLI002", "4321").check_password()).json()["valid"] is True
    clock.advance(svc.settings.password_lock_s + 1)
    for card in cards:
        assert (await card.check_password()).json()["valid"] is True


async def test_a_right_password_on_one_convenio_resets_the_customers_count(seed: Terminal, backoffice, svc) -> None:
    emp001, emp002, emp003 = await same_customer_in_three_convenios(seed, backoffice)
    for n in range(svc.settings.password_max_failures - 1):
        await (emp001 if n % 2 else emp002).check_password(wrong_pin(seed))
    assert (await emp003.check_password()).json()["valid"] is True
    assert (await emp001.check_password(wrong_pin(seed))).json()["attempts_left"] == (
        svc.settings.password_max_failures - 1
    )


async def test_checks_in_flight_on_different_convenios_count_together(
    seed: Terminal, backoffice, svc, clock: Clock
) -> None:
    from gateway.auth.password_check import CHECK_STALE_MS, attempt_call, find

    cards = await same_customer_in_three_convenios(seed, backoffice)
    # checks opened on EMP001 and EMP002 whose verdicts are still being computed
    for n in range(svc.settings.password_max_failures):
        card = cards[n % 2]
        found = await find(svc, card.convenio, card.participant)
        keys, args = attempt_call(svc, card.convenio, card.participant, svc.protocol(), found)
        assert (await svc.run("password_attempt", keys, args))["ok"]
    # so a check on EMP003 must wait for them
    busy = assert_error(await cards[2].check_password(), 429, "PASSWORD_CHECK_BUSY")
    assert busy["retry_after"] >= 1
    clock.advance(CHECK_STALE_MS / 1000 + 1)
    assert (await cards[2].check_password()).json()["valid"] is True


async def test_a_burst_of_guesses_over_three_convenios_cannot_exceed_the_customers_allowed_failures(
    seed: Terminal, backoffice, svc
) -> None:
    cards = await same_customer_in_three_convenios(seed, backoffice)
    answers = await asyncio.gather(*(cards[n % 3].check_password(wrong_pin(seed)) for n in range(21)))
    verified = [a for a in answers if a.status_code == 200]
    assert len(verified) == svc.settings.password_max_failures, [a.text for a in answers]
    assert all(a.status_code in (423, 429) for a in answers if a.status_code != 200)
    for card in cards:
        assert_error(await card.check_password(), 423, "PASSWORD_LOCKED")


async def test_a_new_password_from_the_back_office_lifts_the_customers_lock(
    seed: Terminal, backoffice, svc, clock: Clock
) -> None:
    emp001, emp002, _ = await same_customer_in_three_convenios(seed, backoffice)
    for _ in range(svc.settings.password_max_failures):
        await emp001.check_password(wrong_pin(seed))
    assert_error(await emp002.check_password(), 423, "PASSWORD_LOCKED")
    clock.advance(1)
    r = await backoffice.update_participant("EMP002", "CLI001", password="246810")
    assert r.status_code == 200, r.text
    assert (await emp002.check_password("246810")).json()["valid"] is True
    assert (await emp001.check_password()).json()["valid"] is True  # the lock was the customer's


async def test_a_checks_scripts_touch_only_the_customers_slot_and_stream(seed: Terminal, backoffice, svc) -> None:
    # on a Redis Cluster a script's keys must share one hash slot: the customer's shard's tag,
    # though EMP002's participant hash and the proof live under the convênio's
    import re

    from gateway.auth.password_check import Found, attempt_call, result_call

    k = svc.keys
    assert k.shard_of("EMP002") != k.shard_of("CLI001")  # else this proves nothing
    customer_tag = f"{{s{k.shard_of('CLI001')}}}"
    for keys, _ in (
        attempt_call(svc, "EMP002", "CLI001", "P1", Found("")),
        result_call(svc, "EMP002", "CLI001", "P1", 0),
        result_call(svc, "EMP002", "CLI001", "P1", 1),
    ):
        assert {re.search(r"\{[^}]*\}", key).group(0) for key in keys} == {customer_tag}, keys
        assert k.events(k.shard_of("CLI001")) in keys
    emp002 = (await same_customer_in_three_convenios(seed, backoffice))[1]
    await emp002.check_password(wrong_pin(seed))
    last = await svc.redis.xrevrange(k.events(k.shard_of("CLI001")), count=1)
    assert last[0][1][b"type"] == b"password.failed"
