"""The bank test, CI-sized: about fifteen seconds of checkouts, and returns of what they sold,
while Redis, the ledger writer, a gateway worker and Postgres are each killed at least twice.
The long run is `.venv/bin/python -m tests.faults.bank --duration 300` (see tests/faults/bank.py)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.faults.bank import FAULTS, Run, bank

ON_CLUSTER = os.environ.get("CONVENIO_TEST_REDIS") == "cluster"


@pytest.mark.skipif(ON_CLUSTER, reason="the cluster pass runs the bank test below")
async def test_sales_and_returns_through_crashes_lose_nothing_lend_nothing_beyond_the_limit_move_money_once() -> None:
    await _bank(Run(duration_s=15, terminals=12, participants=6, fault_every_s=1.5))


@pytest.mark.skipif(not ON_CLUSTER, reason="runs in ./test's cluster pass")
async def test_on_a_cluster_a_master_killed_among_the_faults_loses_nothing_either() -> None:
    """3 masters with a replica each, REPLICA_ACKS=1: the Redis fault SIGKILLs a master (each in
    turn), its replica takes over, the dead node comes back as a replica."""
    await _bank(Run(duration_s=15, terminals=12, participants=6, fault_every_s=1.5, cluster=True))


async def _bank(run: Run) -> None:
    root = Path(tempfile.mkdtemp(prefix="convenio-bank-", dir="/tmp"))
    verdict = await bank(run, root)
    figures = verdict.figures
    print(json.dumps(figures, indent=2))  # the run's figure: operations, faults, retries

    assert not verdict.problems, f"logs and data kept in {root}:\n" + "\n".join(verdict.problems[:50])
    assert all(figures["faults"].get(kind, 0) >= 1 for kind in FAULTS), figures["faults"]
    assert figures["retried"] > 0, "no request was retried: the faults touched nothing"
    assert figures["decisions"].get("hold INSUFFICIENT_LIMIT", 0) > 0, "no sale ran into a limit"
    assert figures["drift"] == 0
    returns = figures["returns"]
    for what in (
        "approved POOL",
        "approved CREDIT",
        "declined RETURN_EXCEEDS_SALE",
        "declined EMPENHO_NOT_COMMITTED",
        "racing pairs",
        "approved after forgotten",
        "restored from the ledger",
        "reversed after returns",
        "reversal refused FULLY_RETURNED",
        "replayed",
    ):
        assert returns.get(what, 0) > 0, f"no return {what}: {returns}"
    shutil.rmtree(root, ignore_errors=True)
