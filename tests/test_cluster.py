"""On a Redis Cluster: the shards over the masters (`convenio cluster`), and a shard moved to
another master while a terminal's holds go on, each hold decided once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from gateway.platform.redis.cluster import slot_of
from gateway.platform.services import Services
from ledger.ops import cluster as topology
from tests.checkout import Terminal, mint_proof

pytestmark = pytest.mark.skipif(
    os.environ.get("CONVENIO_TEST_REDIS") != "cluster", reason="runs in ./test's cluster pass"
)

CLI = [sys.executable, "-m", "ledger.cli"]


def _address(svc: Services) -> str:
    return topology.node_of(svc.settings.redis_url)[0]


def convenio(svc: Services, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "REDIS_URL": svc.settings.redis_url,
        "CONVENIO_KEY_PREFIX": svc.settings.key_prefix,
        "CONVENIO_SHARDS": str(svc.settings.shards),
    }
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)


async def test_holds_go_on_while_their_shard_moves_to_another_master_and_each_is_decided_once(
    seed: Terminal, svc: Services
) -> None:
    shard = svc.keys.shard_of(seed.convenio)
    slot = slot_of(svc.keys.tag(shard))
    everyone = await topology.masters(_address(svc))
    source = next(m for m in everyone if m.serves(slot))
    target = next(m for m in everyone if m is not source)
    available = await seed.available()
    proofs = [await mint_proof(svc, seed.convenio, seed.participant) for _ in range(60)]
    answers: list[int] = []
    retries_before = svc.resp.retries

    async def terminal(mine: list[str]) -> None:
        for proof in mine:
            answers.append((await seed.hold(1, proof=proof)).status_code)
            await asyncio.sleep(0.005)

    # a few keys at a time, so that holds land while the slot is half here, half there (ASK,
    # TRYAGAIN), in some 40 steps: the suite's earlier tests left their keys of this shard in
    # the slot too, and a hold whose keys stay split for longer than its deadline gets 503
    keys = await topology.keys_in_slot(source, slot)
    moving = topology.move_slot(slot, source, target, everyone, batch=max(2, keys // 40))
    moved, *_ = await asyncio.gather(moving, *(terminal(proofs[i::4]) for i in range(4)))

    assert moved > 0
    assert answers == [201] * 60  # nobody turned away while the shard moved
    assert await seed.available() == available - 60  # and none of them taken twice or lost
    now = await topology.masters(_address(svc))
    assert topology.placement(svc.keys, now)[str(shard)] == target.address
    assert svc.resp.retries > retries_before  # it did see the cluster redirect it
    r = await seed.hold(1)
    assert r.status_code == 201


async def test_convenio_cluster_shows_the_shards_of_each_master_and_moves_one(svc: Services) -> None:
    status = convenio(svc, "cluster", "status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert len(lines) == 3  # one per master
    counts = [int(line.split("shards ", 1)[1].split(":", 1)[0]) for line in lines]
    assert sum(counts) == svc.settings.shards + 1  # the numbered shards and the global one

    everyone = await topology.masters(_address(svc))
    where = topology.placement(svc.keys, everyone)
    target = next(m.address for m in everyone if m.address != where["0"])
    moved = convenio(svc, "cluster", "move", "0", target)
    assert moved.returncode == 0, moved.stderr
    assert f"-> {target}" in moved.stdout
    assert topology.placement(svc.keys, await topology.masters(_address(svc)))["0"] == target

    nowhere = convenio(svc, "cluster", "move", "0", "127.0.0.1:1")
    assert nowhere.returncode != 0 and "is not a master" in nowhere.stderr
    plan = convenio(svc, "cluster", "spread", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    spread = convenio(svc, "cluster", "spread")
    assert spread.returncode == 0, spread.stderr
    after = topology.placement(svc.keys, await topology.masters(_address(svc)))
    numbered = [after[str(s)] for s in range(svc.settings.shards)]
    held = [numbered.count(m.address) for m in everyone]
    assert max(held) - min(held) <= 1
