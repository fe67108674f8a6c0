"""Baseline (ii): the raw hold script (`empenho_hold.lua`) straight into Redis, pipelined, with no HTTP
and no gateway around it: the most holds Redis itself can decide on one core.

The keys and arguments are laid out as `gateway/empenhos.py` lays them out for a real hold (see
the header of `gateway/lua/empenho_hold.lua`); every call has its own minted proof, idempotency key
and empenho id, so each one is a full approval with its event.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import msgspec

from bench.http_load import Result
from gateway.auth.apikeys import key_id
from gateway.platform.digests import digest
from gateway.platform.ids import new_empenho_id
from gateway.platform.redis.scripts import source
from gateway.platform.services import Services


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far: says whether Redis was the limit."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _call(svc: Services, api_key_id: str, convenio: str, participant: str, proof: str, n: int) -> tuple[list, list]:
    k, s = svc.keys, svc.settings
    shard = k.shard_of(convenio)
    eid = new_empenho_id(shard)
    idem = digest(f"raw-{proof}")[:32]
    now = svc.now_ms()
    keys = [
        k.convenio(convenio),
        k.participant(convenio, participant),
        k.vehicles(convenio, participant),
        k.proof(convenio, digest(proof)),
        k.idempotency(convenio, api_key_id, idem),
        k.empenho(shard, eid),
        k.empenho_history(shard, eid),
        k.pending(shard),
        k.events(shard),
    ]
    fingerprint = hashlib.sha256(f"{participant}:{n}".encode()).hexdigest()
    args: list[Any] = [convenio, participant, 100, now, now + s.hold_ttl_s * 1000, eid, svc.protocol()]
    args += [fingerprint, s.idempotency_ttl_s, "PDV01", "LOJA01", f"R{n}", "", "", api_key_id, "1", idem]
    return keys, args


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
