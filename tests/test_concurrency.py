"""Hundreds of terminals at once against one balance: exactly as many holds as fit are
approved, and never a centavo beyond limit + tolerance."""

import asyncio
import random

from tests.checkout import BackOffice, Terminal, mint_proof


async def pending_total(svc, convenio: str) -> int:
    """Sum of the PENDING empenhos of a convênio, read from the empenho records themselves."""
    total = 0
    for shard in range(svc.settings.shards):
        for raw in await svc.redis.zrange(svc.keys.pending(shard), 0, -1):
            conv, amount, status = await svc.redis.hmget(
                svc.keys.empenho(shard, raw.decode()), "convenio", "amount", "status"
            )
            if conv and conv.decode() == convenio and status == b"PENDING":
                total += int(amount)
    return total


async def test_three_hundred_terminals_race_for_a_shared_pool_with_room_for_one_hundred(
    svc, seed: Terminal, backoffice: BackOffice
) -> None:
    # R$ 95,00 pool + R$ 5,00 tolerance: room for exactly 100 holds of R$ 1,00
    await backoffice.create_convenio("POOL", total_limit=9500, tolerance=500, shared=True)
    participants = [f"P{i:03d}" for i in range(30)]
    for p in participants:
        await backoffice.add_participant("POOL", p)
    attempts = []
    for i in range(300):
        p = participants[i % len(participants)]
        attempts.append((seed.as_participant("POOL", p), await mint_proof(svc, "POOL", p)))

    answers = await asyncio.gather(*(t.hold(100, proof=proof) for t, proof in attempts))

    approved = [a for a in answers if a.status_code == 201]
    declined = [a for a in answers if a.status_code != 201]
    assert len(approved) == 100
    assert {a.json()["error"]["code"] for a in declined} == {"INSUFFICIENT_LIMIT"}
    assert all(a.json()["error"]["available"] < 100 for a in declined)
    pool = (await seed.limit("POOL", "P000")).json()
    assert (pool["balance"], pool["reserved"], pool["available"]) == (9500, 10000, 0)
    assert await pending_total(svc, "POOL") == 10000
    assert len({a.json()["id"] for a in approved}) == 100


async def test_holds_commits_and_cancels_racing_on_one_participant_add_up(svc, seed: Terminal) -> None:
    # CLI001: R$ 100,00 + R$ 10,00; 200 holds of R$ 0,70 race for R$ 110,00: 157 fit
    proofs = [await mint_proof(svc, "EMP001", "CLI001") for _ in range(200)]
    answers = await asyncio.gather(*(seed.hold(70, proof=p) for p in proofs))
    approved = [a.json()["id"] for a in answers if a.status_code == 201]
    assert len(approved) == 11000 // 70

    rng = random.Random(7)
    rng.shuffle(approved)
    to_commit, to_cancel = approved[:100], approved[100:]
    results = await asyncio.gather(
        *(seed.commit(i, coupon=f"C{i}") for i in to_commit),
        *(seed.cancel(i) for i in to_cancel),
        *(seed.commit(i, coupon=f"C{i}") for i in to_commit),  # every terminal retries once
    )
    assert all(r.status_code == 200 for r in results)
    limit = (await seed.limit()).json()
    assert limit["balance"] == 10000 - 100 * 70
    assert limit["reserved"] == 0
    assert await pending_total(svc, "EMP001") == 0


async def test_retries_of_the_same_hold_in_parallel_are_charged_once(svc, seed: Terminal) -> None:
    sale = seed.sale(578, await mint_proof(svc, "EMP001", "CLI001"))
    answers = await asyncio.gather(*(seed.hold(578, body=sale, idempotency_key="RETRY-STORM") for _ in range(50)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(1 for a in answers if "Idempotent-Replayed" not in a.headers) == 1
    assert (await seed.limit()).json()["reserved"] == 578
