"""An empenho's life at the checkout: idempotent retries, partial commits, cancels before and
after commit, repeated calls, and holds that time out."""

from gateway.holds import sweeper
from tests.checkout import Clock, Terminal


async def test_a_retried_hold_replays_the_first_answer_and_holds_nothing_more(seed: Terminal) -> None:
    proof = await seed.proof()
    sale = seed.sale(578, proof)
    first = await seed.hold(578, body=sale, idempotency_key="PDV01-V1")
    again = await seed.hold(578, body=sale, idempotency_key="PDV01-V1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert (await seed.available()) == 11000 - 578


async def test_the_same_key_with_another_body_is_a_conflict(seed: Terminal) -> None:
    proof = await seed.proof()
    sale = seed.sale(578, proof)
    assert (await seed.hold(578, body=sale, idempotency_key="K1")).status_code == 201
    other = await seed.hold(600, body={**sale, "amount": 600}, idempotency_key="K1")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    # another convênio under the same key is a conflict too, though it lives in another shard
    elsewhere = await seed.hold(578, body={**sale, "convenio": "EMP999"}, idempotency_key="K1")
    assert elsewhere.status_code == 409
    assert (await seed.available()) == 11000 - 578


async def test_idempotency_keys_belong_to_the_api_key_that_sent_them(seed: Terminal, backoffice) -> None:
    other_terminal = Terminal(seed.client, {**seed.creds, "api_key": await backoffice.key(3183, 3184, 3185)})
    sale = seed.sale(100, await seed.proof())
    assert (await seed.hold(100, body=sale, idempotency_key="SHARED")).status_code == 201
    sale2 = other_terminal.sale(200, await other_terminal.proof())
    second = await other_terminal.hold(200, body=sale2, idempotency_key="SHARED")
    assert second.status_code == 201
    assert "Idempotent-Replayed" not in second.headers
    assert (await seed.available()) == 11000 - 300


async def test_a_declined_hold_is_a_decision_replayed_the_same_way(seed: Terminal) -> None:
    sale = seed.sale(20000, await seed.proof())
    first = await seed.hold(20000, body=sale, idempotency_key="BIG")
    assert first.status_code == 422
    err = first.json()["error"]
    assert err["code"] == "INSUFFICIENT_LIMIT"
    assert err["available"] == 11000
    assert err["protocol"]
    again = await seed.hold(20000, body=sale, idempotency_key="BIG")
    assert again.status_code == 422
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_the_tolerance_is_spendable_to_the_last_centavo(seed: Terminal) -> None:
    assert (await seed.hold(11000)).status_code == 201
    over = await seed.hold(1)
    assert over.status_code == 422
    assert over.json()["error"] == {**over.json()["error"], "code": "INSUFFICIENT_LIMIT", "available": 0}


async def test_a_partial_commit_debits_what_was_sold_and_releases_the_rest(seed: Terminal) -> None:
    held = (await seed.hold(1000)).json()
    r = await seed.commit(held["id"], amount=578)
    assert r.status_code == 200
    assert r.json()["amount"] == 578
    assert r.json()["balance"] == 10000 - 578
    limit = (await seed.limit()).json()
    assert (limit["reserved"], limit["available"]) == (0, 11000 - 578)
    assert (await seed.get(held["id"])).json()["committed_amount"] == 578


async def test_a_commit_over_the_hold_is_refused(seed: Terminal) -> None:
    held = (await seed.hold(1000)).json()
    r = await seed.commit(held["id"], amount=1001)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "COMMIT_EXCEEDS_HOLD"
    assert (await seed.get(held["id"])).json()["status"] == "PENDING"


async def test_committing_again_with_the_same_coupon_returns_the_same_answer(seed: Terminal) -> None:
    held = (await seed.hold(578)).json()
    first = await seed.commit(held["id"], coupon="C-1")
    again = await seed.commit(held["id"], coupon="C-1")
    explicit = await seed.commit(held["id"], coupon="C-1", amount=578)
    assert first.status_code == again.status_code == explicit.status_code == 200
    assert again.json() == first.json() == explicit.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await seed.commit(held["id"], coupon="C-2")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "COMMIT_CONFLICT"
    assert (await seed.limit()).json()["balance"] == 10000 - 578


async def test_cancel_before_commit_releases_the_hold(seed: Terminal) -> None:
    held = (await seed.hold(578)).json()
    r = await seed.cancel(held["id"], reason="cliente desistiu")
    assert r.status_code == 200
    assert r.json()["status"] == "CANCELLED"
    assert (await seed.available()) == 11000
    again = await seed.cancel(held["id"])
    assert again.status_code == 200
    assert again.json() == r.json()
    late = await seed.commit(held["id"])
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "EMPENHO_NOT_PENDING"
    assert late.json()["error"]["status"] == "CANCELLED"
    record = (await seed.get(held["id"])).json()
    assert record["cancel_reason"] == "cliente desistiu"


async def test_cancel_after_commit_reverses_the_sale(seed: Terminal) -> None:
    held = (await seed.hold(578)).json()
    assert (await seed.commit(held["id"])).status_code == 200
    r = await seed.cancel(held["id"])
    assert r.status_code == 200
    assert r.json()["status"] == "REVERSED"
    assert r.json()["amount"] == 578
    assert r.json()["balance"] == 10000
    assert (await seed.cancel(held["id"])).json() == r.json()
    assert (await seed.limit()).json()["balance"] == 10000
    statuses = [h["status"] for h in (await seed.get(held["id"])).json()["history"]]
    assert statuses == ["PENDING", "COMMITTED", "REVERSED"]


async def test_a_hold_nobody_commits_expires_and_gives_the_limit_back(seed: Terminal, clock: Clock, svc) -> None:
    held = (await seed.hold(578)).json()
    clock.advance(svc.settings.hold_ttl_s - 1)
    assert await sweeper.sweep_once(svc) == 0
    assert (await seed.available()) == 11000 - 578
    clock.advance(2)
    assert await sweeper.sweep_once(svc) == 1
    assert (await seed.available()) == 11000
    assert (await seed.get(held["id"])).json()["status"] == "EXPIRED"
    late = await seed.commit(held["id"])
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "EMPENHO_NOT_PENDING"
    assert (await seed.cancel(held["id"])).status_code == 409


async def test_a_commit_after_the_deadline_expires_the_hold_even_before_the_sweeper(
    seed: Terminal, clock: Clock, svc
) -> None:
    held = (await seed.hold(578)).json()
    clock.advance(svc.settings.hold_ttl_s + 1)
    late = await seed.commit(held["id"])
    assert late.status_code == 409
    assert late.json()["error"]["status"] == "EXPIRED"
    assert (await seed.available()) == 11000
    assert await sweeper.sweep_once(svc) == 0  # nothing left to release twice


async def test_unknown_empenhos(seed: Terminal) -> None:
    for bad in ("E1-01ARZ3NDEKTSV4RRFFQ69G5FAV", "nonsense", "E999-01ARZ3NDEKTSV4RRFFQ69G5FAV"):
        for r in (await seed.get(bad), await seed.commit(bad), await seed.cancel(bad)):
            assert r.status_code == 404, (bad, r.text)
            assert r.json()["error"]["code"] == "UNKNOWN_EMPENHO"
