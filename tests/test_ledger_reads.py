"""What the ledger answers later: every decision under its protocol, an empenho that has left
Redis, a convênio's movements; never a secret in any column; and while Postgres is down, these
reads say so (503) but the checkout goes on."""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any

import httpx
import pytest

from gateway.holds import sweeper
from gateway.platform.ids import empenho_shard
from gateway.platform.postgres import LedgerDB
from ledger.writer import writer
from tests.checkout import BackOffice, Clock, Terminal, assert_error, mint_proof

DAY = 24 * 3600


async def lookup(t: Terminal, protocol: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return await t.client.get(f"/v1/protocols/{protocol}", headers=t.headers if headers is None else headers)


async def decision(t: Terminal, protocol: str) -> dict[str, Any]:
    r = await lookup(t, protocol)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["protocol"] == protocol
    return d


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wrong(password: str) -> str:
    return "999999" if password != "999999" else "888888"


async def leave_redis(svc, empenho_id: str) -> None:
    """What happens to a final empenho once its time in Redis is over."""
    shard = empenho_shard(empenho_id, svc.settings.shards)
    assert shard is not None
    keys = (svc.keys.empenho(shard, empenho_id), svc.keys.empenho_history(shard, empenho_id))
    assert await svc.redis.delete(*keys) == 2
    assert await svc.redis.exists(*keys) == 0


# --- 1. a decision under its protocol --------------------------------------------------------
async def test_an_approved_hold_is_found_under_its_protocol_once_the_writer_stored_it(
    seed: Terminal, svc, ledger_url
) -> None:
    proof = await seed.proof()
    sale = seed.sale(578, proof)
    r = await seed.hold(578, body=sale)
    assert r.status_code == 201, r.text
    held = r.json()

    assert_error(await lookup(seed, held["protocol"]), 404, "UNKNOWN_PROTOCOL")  # not stored yet
    await writer.drain(svc, ledger_url)

    d = await decision(seed, held["protocol"])
    assert (d["kind"], d["outcome"], d["http_status"]) == ("empenho.hold", "APPROVED", 201)
    assert (d["convenio"], d["participant"], d["empenho"]) == ("EMP001", "CLI001", held["id"])
    assert "error" not in d
    for field in ("convenio", "participant", "amount", "terminal", "store", "sale"):
        assert d["request"][field] == sale[field], field
    assert set(held) >= {"id", "status", "available", "expires_at", "protocol"}
    assert d["answer"] == held
    assert proof not in str(d)


async def test_a_declined_hold_is_found_with_its_error_and_what_was_available(seed: Terminal, svc, ledger_url) -> None:
    r = await seed.hold(10**7)
    error = assert_error(r, 422, "INSUFFICIENT_LIMIT")
    assert error["available"] == 11000
    await writer.drain(svc, ledger_url)

    d = await decision(seed, error["protocol"])
    assert (d["kind"], d["outcome"], d["http_status"], d["error"]) == (
        "empenho.hold",
        "DECLINED",
        422,
        "INSUFFICIENT_LIMIT",
    )
    assert d["request"]["amount"] == 10**7
    assert "empenho" not in d  # nothing was held
    assert d["answer"] == r.json()
    assert d["answer"]["error"]["available"] == 11000


async def test_a_commit_a_cancel_and_a_reversal_are_each_found_under_their_protocol(
    seed: Terminal, svc, ledger_url
) -> None:
    sold = (await seed.hold(2000)).json()
    committed = await seed.commit(sold["id"], coupon="NF-100", amount=1500)
    assert committed.status_code == 200, committed.text
    reversed_ = await seed.cancel(sold["id"], reason="devolução")
    assert reversed_.json()["status"] == "REVERSED", reversed_.text
    abandoned = (await seed.hold(300)).json()
    cancelled = await seed.cancel(abandoned["id"])
    assert cancelled.json()["status"] == "CANCELLED", cancelled.text
    await writer.drain(svc, ledger_url)

    d = await decision(seed, committed.json()["protocol"])
    assert (d["kind"], d["outcome"], d["http_status"], d["empenho"]) == ("empenho.commit", "APPROVED", 200, sold["id"])
    assert d["request"] == {"id": sold["id"], "coupon": "NF-100", "amount": 1500}
    assert d["answer"] == committed.json()

    d = await decision(seed, reversed_.json()["protocol"])
    assert (d["kind"], d["outcome"], d["http_status"], d["empenho"]) == ("empenho.cancel", "APPROVED", 200, sold["id"])
    assert d["request"] == {"id": sold["id"], "reason": "devolução"}
    assert d["answer"] == reversed_.json()

    d = await decision(seed, cancelled.json()["protocol"])
    assert (d["kind"], d["outcome"], d["empenho"]) == ("empenho.cancel", "APPROVED", abandoned["id"])
    assert d["answer"] == cancelled.json()


async def test_password_checks_right_wrong_and_locked_are_found_under_their_protocol(
    seed: Terminal, svc, ledger, ledger_url
) -> None:
    valid = await seed.check_password()
    assert valid.json()["valid"] is True
    invalid = await seed.check_password(wrong(seed.password))
    assert invalid.json()["valid"] is False
    # a burst of guesses: the one past the allowed failures, counting those in progress, waits;
    # the others fail, the last of them locks the participant, and the next check is refused
    burst = await asyncio.gather(
        *(seed.check_password(wrong(seed.password)) for _ in range(svc.settings.password_max_failures))
    )
    busy = [r for r in burst if r.status_code == 429]
    assert len(busy) == 1, [r.text for r in burst]
    wait = assert_error(busy[0], 429, "PASSWORD_CHECK_BUSY")
    lock = assert_error(await seed.check_password(), 423, "PASSWORD_LOCKED")
    stranger = await seed.check_password(participant="NINGUEM")
    refused = assert_error(stranger, 404, "UNKNOWN_PARTICIPANT")
    await writer.drain(svc, ledger_url)

    d = await decision(seed, valid.json()["protocol"])
    assert (d["kind"], d["outcome"], d["http_status"]) == ("password.verify", "APPROVED", 200)
    assert d["request"] == {"convenio": "EMP001", "participant": "CLI001"}
    assert d["answer"] == {"valid": True, "protocol": valid.json()["protocol"]}  # never the proof

    d = await decision(seed, invalid.json()["protocol"])
    assert (d["kind"], d["outcome"], d["http_status"]) == ("password.verify", "DECLINED", 200)
    assert d["answer"] == invalid.json()
    assert d["answer"]["attempts_left"] == svc.settings.password_max_failures - 1

    assert await ledger.fetchval("SELECT type FROM journal WHERE protocol = $1", lock["protocol"]) == "password.refused"
    d = await decision(seed, wait["protocol"])
    assert (d["kind"], d["outcome"], d["http_status"], d["error"]) == (
        "password.verify",
        "DECLINED",
        429,
        "PASSWORD_CHECK_BUSY",
    )
    assert d["answer"] == busy[0].json()
    d = await decision(seed, lock["protocol"])
    assert (d["kind"], d["outcome"], d["http_status"], d["error"]) == (
        "password.verify",
        "DECLINED",
        423,
        "PASSWORD_LOCKED",
    )
    assert d["answer"]["error"]["code"] == "PASSWORD_LOCKED"
    assert d["answer"]["error"]["protocol"] == lock["protocol"]

    d = await decision(seed, refused["protocol"])
    assert (d["kind"], d["outcome"], d["http_status"], d["error"]) == (
        "password.verify",
        "DECLINED",
        404,
        "UNKNOWN_PARTICIPANT",
    )
    assert (d["convenio"], d["participant"]) == ("EMP001", "NINGUEM")
    assert d["answer"] == stranger.json()


async def test_the_answer_kept_for_a_lockout_is_the_one_the_terminal_got(seed: Terminal, svc, ledger_url) -> None:
    for _ in range(svc.settings.password_max_failures):
        await seed.check_password(wrong(seed.password))
    r = await seed.check_password()
    lock = assert_error(r, 423, "PASSWORD_LOCKED")
    await writer.drain(svc, ledger_url)
    assert (await decision(seed, lock["protocol"]))["answer"] == r.json()


async def test_an_expiry_by_the_sweeper_and_a_commit_that_found_the_hold_overdue_are_decisions_too(
    seed: Terminal, svc, clock: Clock, ledger_url
) -> None:
    forgotten = (await seed.hold(700)).json()
    late = (await seed.hold(800)).json()
    clock.advance(svc.settings.hold_ttl_s + 1)
    r = await seed.commit(late["id"], coupon="NF-TARDE")  # before the sweeper comes by
    refused = assert_error(r, 409, "EMPENHO_NOT_PENDING")
    assert refused["status"] == "EXPIRED"
    assert await sweeper.sweep_once(svc) == 1
    swept = (await seed.get(forgotten["id"])).json()
    assert swept["status"] == "EXPIRED"
    await writer.drain(svc, ledger_url)

    expiry = swept["history"][-1]
    d = await decision(seed, expiry["protocol"])
    assert (d["kind"], d["outcome"], d["empenho"]) == ("empenho.expire", "APPROVED", forgotten["id"])
    assert "http_status" not in d  # nobody asked: the sweeper decided
    assert d["answer"] == {"id": forgotten["id"], "status": "EXPIRED", "amount": 700, "protocol": expiry["protocol"]}

    d = await decision(seed, refused["protocol"])
    assert (d["kind"], d["outcome"], d["http_status"], d["error"]) == (
        "empenho.commit",
        "DECLINED",
        409,
        "EMPENHO_NOT_PENDING",
    )
    assert d["empenho"] == late["id"]
    assert d["answer"] == r.json()


async def test_an_unknown_protocol_is_404_and_a_malformed_one_422(seed: Terminal, svc, ledger_url) -> None:
    await seed.hold(578)
    await writer.drain(svc, ledger_url)
    assert_error(await lookup(seed, "P01ARZ3NDEKTSV4RRFFQ69G5FAV"), 404, "UNKNOWN_PROTOCOL")
    assert_error(await lookup(seed, "not-a-protocol"), 422, "INVALID_REQUEST", field="protocol")


async def test_whoever_can_ask_for_a_decision_can_look_it_up(
    seed: Terminal, backoffice: BackOffice, svc, ledger_url
) -> None:
    held = (await seed.hold(578)).json()
    await writer.drain(svc, ledger_url)
    for allowed in (3183, 3184, 3185, 3186, 1748, 9000):
        r = await lookup(seed, held["protocol"], bearer(await backoffice.key(allowed)))
        assert r.status_code == 200, (allowed, r.text)
    assert_error(await lookup(seed, held["protocol"], bearer(await backoffice.key(3187))), 403, "FORBIDDEN")
    assert_error(await lookup(seed, held["protocol"], {}), 401, "UNAUTHORIZED")


# --- 2. no secret in the ledger --------------------------------------------------------------
async def test_no_password_proof_or_key_is_stored_in_any_column_of_the_ledger(
    seed: Terminal, backoffice: BackOffice, svc, ledger, ledger_url
) -> None:
    password, guesses = "Senha-Da-Cliente-7Q2", ["Palpite-Errado-Um-55", "Palpite-Errado-Dois-66"]
    integration_key = "ik-Chave-De-Integracao-Nova-3X9"
    assert (await backoffice.set_integration_key(integration_key)).status_code == 200
    await backoffice.create_convenio("SIGILO", total_limit=50_000)
    await backoffice.add_participant("SIGILO", "CLI9", limit=20_000, password=password)
    api_key = await backoffice.key(3183, 3184, 3185, 3186)
    till = Terminal(
        seed.client,
        {
            "convenio": "SIGILO",
            "participant": "CLI9",
            "password": password,
            "integration_key": integration_key,
            "api_key": api_key,
        },
    )
    for guess in guesses:
        assert (await till.check_password(guess)).json()["valid"] is False
    old_key = await till.check_password(integration_key=seed.integration_key)
    assert_error(old_key, 403, "INTEGRATION_KEY_INVALID")
    proofs = [await till.proof() for _ in range(3)]
    sold = (await till.hold(1200, proof=proofs[0])).json()
    assert (await till.commit(sold["id"], coupon="NF-SIGILO-1")).status_code == 200
    assert (await till.hold(10**6, proof=proofs[1])).status_code == 422  # declined: the proof stays unused
    made_up = "prova-inventada-que-ninguem-emitiu"
    assert (await till.hold(100, proof=made_up)).json()["error"]["code"] == "PASSWORD_PROOF_INVALID"
    await writer.drain(svc, ledger_url)

    columns = await ledger.fetch(
        """SELECT table_name, column_name FROM information_schema.columns
           WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')
           ORDER BY table_name, column_name"""
    )
    tables = {c["table_name"] for c in columns}
    assert tables >= {"journal", "decisions", "participants", "empenhos", "movements", "api_keys", "integration_key"}
    assert await ledger.fetchval("SELECT count(*) FROM decisions WHERE kind = 'password.verify'") >= 5
    assert await ledger.fetchval("SELECT count(*) FROM api_keys") >= 3

    secrets = [
        password,
        *guesses,
        *proofs,
        made_up,
        api_key,
        seed.headers["Authorization"].removeprefix("Bearer "),
        backoffice.api_key,
        integration_key,
        seed.integration_key,
    ]

    async def columns_holding(text: str) -> list[tuple[str, str]]:
        holding = []
        for c in columns:
            table, column = c["table_name"], c["column_name"]
            sql = f'SELECT count(*) FROM "{table}" WHERE strpos("{column}"::text, $1) > 0'
            if await ledger.fetchval(sql, text):
                holding.append((table, column))
        return holding

    # the search does find what is there: the sale's coupon, the participant's name
    assert ("movements", "coupon") in await columns_holding("NF-SIGILO-1")
    assert ("participants", "record") in await columns_holding("CLIENTE CLI9")
    assert {s: await columns_holding(s) for s in secrets} == dict.fromkeys(secrets, [])


# --- 3. an empenho that has left Redis -------------------------------------------------------
async def test_a_committed_empenho_reads_the_same_after_it_left_redis(
    seed: Terminal, backoffice: BackOffice, svc, clock: Clock, ledger_url
) -> None:
    assert (await backoffice.add_vehicle("EMP001", "CLI001", "ABC1D23", "carro")).status_code == 201
    held = (await seed.hold(2000, vehicle={"plate": "ABC1D23", "odometer_km": 45_000})).json()
    clock.advance(60)
    assert (await seed.commit(held["id"], coupon="NF-77", amount=1500)).status_code == 200
    before = (await seed.get(held["id"])).json()
    assert (before["status"], before["committed_amount"], before["coupon"]) == ("COMMITTED", 1500, "NF-77")
    assert before["vehicle"] == {"plate": "ABC1D23", "odometer_km": 45_000}
    assert [h["status"] for h in before["history"]] == ["PENDING", "COMMITTED"]
    await writer.drain(svc, ledger_url)

    await leave_redis(svc, held["id"])
    after = await seed.get(held["id"])
    assert after.status_code == 200, after.text
    assert after.json() == before


async def test_a_reversed_empenho_reads_the_same_after_it_left_redis(
    seed: Terminal, svc, clock: Clock, ledger_url
) -> None:
    held = (await seed.hold(900)).json()
    clock.advance(30)
    await seed.commit(held["id"], coupon="NF-78")
    clock.advance(30)
    assert (await seed.cancel(held["id"], reason="devolução")).json()["status"] == "REVERSED"
    before = (await seed.get(held["id"])).json()
    assert before["cancel_reason"] == "devolução"
    assert [h["status"] for h in before["history"]] == ["PENDING", "COMMITTED", "REVERSED"]
    await writer.drain(svc, ledger_url)

    await leave_redis(svc, held["id"])
    after = await seed.get(held["id"])
    assert after.status_code == 200, after.text
    assert after.json() == before


async def test_an_empenho_that_never_existed_is_404(seed: Terminal, svc, ledger_url) -> None:
    assert_error(await seed.get("E0-01ARZ3NDEKTSV4RRFFQ69G5FAV"), 404, "UNKNOWN_EMPENHO")
    assert_error(await seed.get("E99-01ARZ3NDEKTSV4RRFFQ69G5FAV"), 404, "UNKNOWN_EMPENHO")  # no such shard
    assert_error(await seed.get("nonsense"), 404, "UNKNOWN_EMPENHO")


# --- 4. a convênio's movements ---------------------------------------------------------------
def date_of(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).date().isoformat()


def instant(ms: int, hours: int = 0) -> str:
    tz = datetime.timezone(datetime.timedelta(hours=hours))
    text = datetime.datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


async def sell(t: Terminal, svc, amount: int, coupon: str) -> dict[str, Any]:
    held = await t.hold(amount, proof=await mint_proof(svc, t.convenio, t.participant))
    assert held.status_code == 201, held.text
    committed = await t.commit(held.json()["id"], coupon=coupon)
    assert committed.status_code == 200, committed.text
    return held.json()


async def three_days_of_sales(seed: Terminal, backoffice: BackOffice, svc, clock: Clock) -> dict[str, int]:
    """Two participants of MOV1 buy on three days; one sale comes back; one limit goes up.
    Returns the gateway clock (ms) of each day."""
    await backoffice.create_convenio("MOV1", total_limit=100_000)
    await backoffice.add_participant("MOV1", "ANA", limit=20_000, password="1234")
    await backoffice.add_participant("MOV1", "BETO", limit=10_000, password="5678")
    ana, beto = seed.as_participant("MOV1", "ANA"), seed.as_participant("MOV1", "BETO")
    days = {"day1": clock.now}
    await sell(ana, svc, 1000, "C-1")
    returned = await sell(beto, svc, 2000, "C-2")
    clock.advance(DAY)
    days["day2"] = clock.now
    await sell(ana, svc, 500, "C-3")
    assert (await beto.cancel(returned["id"], reason="devolução")).json()["status"] == "REVERSED"
    clock.advance(DAY)
    days["day3"] = clock.now
    assert (await backoffice.update_participant("MOV1", "ANA", limit=25_000)).status_code == 200
    await sell(beto, svc, 700, "C-4")
    return days


EXPECTED = [  # (participant, kind, amount, balance_after), oldest first
    ("ANA", "LIMIT_CHANGE", 20_000, 20_000),
    ("BETO", "LIMIT_CHANGE", 10_000, 10_000),
    ("ANA", "SALE", -1000, 19_000),
    ("BETO", "SALE", -2000, 8_000),
    ("ANA", "SALE", -500, 18_500),
    ("BETO", "REVERSAL", 2000, 10_000),
    ("ANA", "LIMIT_CHANGE", 5000, 23_500),
    ("BETO", "SALE", -700, 9_300),
]


@pytest.fixture
async def week(seed: Terminal, backoffice: BackOffice, svc, clock: Clock, ledger_url) -> dict[str, Any]:
    days = await three_days_of_sales(seed, backoffice, svc, clock)
    await seed.hold(578)  # another convênio's sale never shows in MOV1's movements
    await writer.drain(svc, ledger_url)
    return {"days": days, "headers": bearer(await backoffice.key(1748))}


async def movements(t: Terminal, headers: dict[str, str], convenio: str = "MOV1", **params: Any) -> httpx.Response:
    return await t.client.get(f"/v1/convenios/{convenio}/movements", params=params, headers=headers)


def summary(page: dict[str, Any]) -> list[tuple]:
    return [(m["participant"], m["kind"], m["amount"], m["balance_after"]) for m in page["movements"]]


async def test_movements_list_sales_reversals_and_limit_changes_oldest_first(seed: Terminal, week) -> None:
    r = await movements(seed, week["headers"])
    assert r.status_code == 200, r.text
    page = r.json()
    assert summary(page) == EXPECTED
    assert "next_after" not in page
    seqs = [m["seq"] for m in page["movements"]]
    assert seqs == sorted(seqs)
    sales = [m for m in page["movements"] if m["kind"] == "SALE"]
    assert [m["coupon"] for m in sales] == ["C-1", "C-2", "C-3", "C-4"]
    assert all(m["empenho"] and m["terminal"] == "PDV01" and m["store"] == "LOJA01" for m in sales)
    assert {m["pool"] for m in page["movements"]} == {"P"}

    # a participant's movements add up to its balance, and balance_after is the running total
    for who in ("ANA", "BETO"):
        mine = [m for m in page["movements"] if m["participant"] == who]
        running = 0
        for m in mine:
            running += m["amount"]
            assert m["balance_after"] == running, m
        balance = (await seed.limit("MOV1", who)).json()["balance"]
        assert sum(m["amount"] for m in mine) == balance


async def test_movements_of_one_participant(seed: Terminal, week) -> None:
    page = (await movements(seed, week["headers"], participant="BETO")).json()
    assert summary(page) == [m for m in EXPECTED if m[0] == "BETO"]
    assert (await movements(seed, week["headers"], participant="NINGUEM")).json() == {"movements": []}


async def test_movements_of_a_period_by_date_or_instant(seed: Terminal, week) -> None:
    days, h = week["days"], week["headers"]
    on_day2, on_day3 = EXPECTED[4:6], EXPECTED[6:]

    def period(**params: Any):
        return movements(seed, h, **params)

    by_date = (await period(**{"from": date_of(days["day2"]), "to": date_of(days["day3"])})).json()
    assert summary(by_date) == on_day2
    assert summary((await period(**{"from": date_of(days["day3"])})).json()) == on_day3
    assert summary((await period(to=date_of(days["day2"]))).json()) == EXPECTED[:4]
    by_instant = (await period(**{"from": instant(days["day2"]), "to": instant(days["day3"])})).json()
    assert summary(by_instant) == on_day2  # `from` inclusive, `to` exclusive
    in_brasilia = (await period(**{"from": instant(days["day2"], -3), "to": instant(days["day3"], -3)})).json()
    assert summary(in_brasilia) == on_day2
    assert all(m["at"] == instant(days["day2"]) for m in by_instant["movements"])
    beto_day3 = (await period(participant="BETO", **{"from": instant(days["day3"])})).json()
    assert summary(beto_day3) == [EXPECTED[7]]


async def test_movements_page_by_page_cover_every_movement_once(seed: Terminal, week) -> None:
    everything = [m["seq"] for m in (await movements(seed, week["headers"])).json()["movements"]]
    for size in (1, 3, 4, 8):
        seen, after, pages = [], 0, 0
        while True:
            r = await movements(seed, week["headers"], limit=size, after=after)
            assert r.status_code == 200, r.text
            page = r.json()
            pages += 1
            assert len(page["movements"]) <= size
            seen += [m["seq"] for m in page["movements"]]
            if "next_after" not in page:
                break
            assert page["next_after"] == page["movements"][-1]["seq"]
            after = page["next_after"]
        assert seen == everything, size
        assert pages == -(-len(everything) // size), size


BAD_QUERIES = [
    ("limit", "0"),
    ("limit", "1001"),
    ("limit", "dez"),
    ("after", "-1"),
    ("after", "P01ARZ3NDEKTSV4RRFFQ69G5FAV"),
    ("from", "ontem"),
    ("from", "2026-13-45"),
    ("to", "2026-03-01T10:00:00"),  # an instant needs its offset
    ("participant", "não vale"),
]


async def test_a_bad_movements_query_names_its_field_and_only_the_back_office_may_ask(
    seed: Terminal, backoffice: BackOffice, svc, ledger_url
) -> None:
    await seed.hold(578)
    await writer.drain(svc, ledger_url)
    sales_key = bearer(await backoffice.key(1748))
    assert (await movements(seed, sales_key, convenio="EMP001")).status_code == 200
    assert (await movements(seed, backoffice.headers, convenio="EMP001")).status_code == 200  # the admin
    for field, value in BAD_QUERIES:
        r = await movements(seed, sales_key, convenio="EMP001", **{field: value})
        assert_error(r, 422, "INVALID_REQUEST", field=field)
    assert_error(await movements(seed, sales_key, convenio="NAOEXISTE"), 404, "UNKNOWN_CONVENIO")
    assert_error(await movements(seed, seed.headers, convenio="EMP001"), 403, "FORBIDDEN")  # the terminal's key
    for code in (3183, 3184, 3185, 3186, 603):
        r = await movements(seed, bearer(await backoffice.key(code)), convenio="EMP001")
        assert_error(r, 403, "FORBIDDEN")


# --- 5. Postgres down ------------------------------------------------------------------------
async def test_with_postgres_down_the_ledger_reads_answer_503_and_the_checkout_goes_on(
    seed: Terminal, backoffice: BackOffice, svc, ledger_url
) -> None:
    gone = (await seed.hold(578)).json()
    await seed.commit(gone["id"], coupon="NF-1")
    await writer.drain(svc, ledger_url)
    await leave_redis(svc, gone["id"])
    sales_key = bearer(await backoffice.key(1748))

    await svc.ledger.close()
    svc.ledger = LedgerDB("postgresql://postgres@127.0.0.1:1/none")
    for read in (
        lookup(seed, gone["protocol"]),
        seed.get(gone["id"]),
        movements(seed, sales_key, convenio="EMP001"),
    ):
        started = time.monotonic()
        assert_error(await read, 503, "LEDGER_UNAVAILABLE")
        assert time.monotonic() - started < 2.5

    held = await seed.hold(1000)
    assert held.status_code == 201, held.text
    assert (await seed.get(held.json()["id"])).status_code == 200  # still in Redis: no Postgres needed
    committed = await seed.commit(held.json()["id"], coupon="NF-2")
    assert committed.status_code == 200, committed.text
    assert (await seed.cancel(held.json()["id"])).json()["status"] == "REVERSED"
    assert (await seed.available()) == 11000 - 578
