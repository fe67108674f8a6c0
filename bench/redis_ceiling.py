"""Baseline (ii): the raw hold script (`empenho_hold.lua`) straight into Redis, pipelined, with no HTTP
and no gateway around it: the most holds Redis itself can decide on one core; then the commit
script (`empenho_commit.lua`) on every empenho the holds placed.

The keys and arguments are the gateway's own (`gateway.holds.empenhos.hold_call`, `commit_call`);
every hold has its own minted proof, idempotency key and empenho id, so each one is a full
approval with its event.

Where a script's time goes (`cost`): Redis's CPU per call (user + system, from /proc: the
script, the protocol, the AOF), the script's own time (`INFO commandstats`, EVALSHA's usec),
and within it each Redis command the script calls (Redis 7 counts those too), the rest being
Lua itself (the interpreter, cjson); and the bytes each call adds to the AOF and to the stream.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import msgspec

from bench.http_load import Result
from gateway.auth.apikeys import key_id
from gateway.holds.empenhos import commit_call, hold_call
from gateway.holds.schemas import CommitRequest, EmpenhoRequest
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


async def run(
    svc: Services, token: str, convenio: str, minted: list[tuple[str, str]], depth: int = 200, held: list | None = None
) -> Result:
    """Every minted proof spent by one hold, `depth` EVALSHAs per pipeline round trip; the
    empenhos placed go into `held` as (id, participant)."""
    sha = await svc.redis.script_load(source("empenho_hold"))
    api_key_id = key_id(token)
    calls = [_call(svc, api_key_id, convenio, p, proof, n) for n, (p, proof) in enumerate(minted)]
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    started = time.perf_counter()
    for start in range(0, len(calls), depth):
        pipe = svc.redis.pipeline(transaction=False)
        batch = calls[start : start + depth]
        for keys, args in batch:
            pipe.evalsha(sha, len(keys), *keys, *args)
        sent = time.perf_counter()
        replies = await pipe.execute()
        for n, raw in enumerate(replies):
            r = msgspec.json.decode(raw)["r"]
            statuses[r["s"]] = statuses.get(r["s"], 0) + 1
            if held is not None and r["s"] == 201:
                held.append((r["id"], minted[start + n][0]))
        latencies.append((time.perf_counter() - sent) * 1000)
    seconds = time.perf_counter() - started
    return Result(len(calls), seconds, latencies, statuses)


async def commits(svc: Services, convenio: str, held: list[tuple[str, str]], depth: int = 200) -> Result:
    """Every empenho in `held` committed for its whole amount, pipelined like the holds."""
    sha = await svc.redis.script_load(source("empenho_commit"))
    shard = svc.keys.shard_of(convenio)
    req = CommitRequest(coupon="CUPOM-RAW")
    calls = [commit_call(svc, shard, eid, convenio, participant, req) for eid, participant in held]
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
    return Result(len(calls), time.perf_counter() - started, latencies, statuses)


class Cost:
    """Redis's cost of the calls made between `start` and `stop`, per call."""

    def __init__(self, svc: Services, pid: int) -> None:
        self.svc, self.pid = svc, pid

    async def _sample(self) -> tuple[float, dict[str, dict], int, int]:
        stats = await self.svc.redis.info("commandstats")
        persistence = await self.svc.redis.info("persistence")
        stream = sum([await self.svc.redis.memory_usage(k, samples=0) or 0 for k in self.svc.keys.all_events()])
        return cpu_seconds(self.pid), stats, int(persistence.get("aof_current_size", 0)), stream

    async def start(self) -> None:
        await self.svc.redis.config_resetstat()
        self.before = await self._sample()

    async def stop(self, calls: int) -> dict:
        cpu1, stats, aof1, stream1 = await self._sample()
        cpu0, _, aof0, stream0 = self.before
        calls = max(calls, 1)
        script = stats.get("cmdstat_evalsha", {})
        inner = {
            name.removeprefix("cmdstat_"): round(v["usec"] / calls, 2)
            for name, v in stats.items()
            if name not in ("cmdstat_evalsha", "cmdstat_info", "cmdstat_config", "cmdstat_memory", "cmdstat_script")
        }
        script_us = script.get("usec", 0) / calls
        commands_us = sum(inner.values())
        return {
            "redis_us_per_call": round((cpu1 - cpu0) * 1e6 / calls, 1),
            "script_us_per_call": round(script_us, 1),
            "commands_us_per_call": round(commands_us, 1),
            "lua_us_per_call": round(script_us - commands_us, 1),  # the interpreter and cjson
            "commands_us": dict(sorted(inner.items(), key=lambda kv: -kv[1])),
            "aof_bytes_per_call": round((aof1 - aof0) / calls),
            "stream_bytes_per_call": round((stream1 - stream0) / calls),
        }
