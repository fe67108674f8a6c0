"""Baseline (ii): the raw hold script (`empenho_hold.lua`) straight into Redis, pipelined, with no HTTP
and no gateway around it: the most holds Redis itself can decide on one core.

The keys and arguments are the gateway's own for a real hold (`gateway.holds.empenhos.hold_call`);
every call has its own minted proof, idempotency key and empenho id, so each one is a full approval
with its event.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import msgspec

from bench.http_load import Result
from gateway.auth.apikeys import key_id
from gateway.holds.empenhos import hold_call
from gateway.holds.schemas import EmpenhoRequest
from gateway.platform.digests import digest
from gateway.platform.redis.scripts import source
from gateway.platform.services import Services


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far: says whether Redis was the limit."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _call(svc: Services, api_key_id: str, convenio: str, participant: str, proof: str, n: int) -> tuple[list, list]:
    """One hold of R$ 1,00 with its own proof, Idempotency-Key digest and fingerprint."""
    req = EmpenhoRequest(
        convenio=convenio,
        participant=participant,
        amount=100,
        terminal="PDV01",
        store="LOJA01",
        sale=f"R{n}",
        proof=proof,
    )
    idem = digest(f"raw-{proof}")[:32]
    fingerprint = hashlib.sha256(f"{participant}:{n}".encode()).hexdigest()
    return hold_call(svc, req, api_key_id, idem, fingerprint, svc.now_ms(), claim=True)


async def run(svc: Services, token: str, convenio: str, minted: list[tuple[str, str]], depth: int = 200) -> Result:
    """Every minted proof spent by one hold, `depth` EVALSHAs per pipeline round trip."""
    sha = await svc.redis.script_load(source("empenho_hold"))
    api_key_id = key_id(token)
    calls = [_call(svc, api_key_id, convenio, p, proof, n) for n, (p, proof) in enumerate(minted)]
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    started = time.perf_counter()
    for start in range(0, len(calls), depth):
        pipe = svc.redis.pipeline(transaction=False)
        for keys, args in calls[start : start + depth]:
            pipe.evalsha(sha, len(keys), *keys, *args)
        sent = time.perf_counter()
        for raw in await pipe.execute():
            status = msgspec.json.decode(raw)["r"]["s"]
            statuses[status] = statuses.get(status, 0) + 1
        latencies.append((time.perf_counter() - sent) * 1000)
    seconds = time.perf_counter() - started
    return Result(len(calls), seconds, latencies, statuses)
