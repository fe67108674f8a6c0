"""Benchmark of the authorization core: the hold and limit endpoints against the framework's
ceiling (a bare Starlette echo served the same way), in one run on this machine.

    .venv/bin/python -m bench.core [--requests N] [--concurrency C] [--appendfsync always|everysec]

Pinning: the server under test (gateway worker, or echo) runs alone on core 0; the load
generator and Redis share core 1. Writes bench/results/<date>-core.json and prints a summary.
Loops are bounded by request count.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import msgspec

from bench import http_load
from bench.stack import echo_command, stop, wait_healthy
from gateway.auth import apikeys
from gateway.auth.permissions import Permission
from gateway.platform.config import Settings
from gateway.platform.services import Services
from gateway.registry import convenios, participants
from gateway.registry.schemas import ConvenioCreate, ParticipantCreate
from ledger.ops import embedded
from tests.checkout import mint_proof

PARTICIPANTS = 500
RESULTS = Path(__file__).with_name("results")


def _serve(cmd: list[str], env: dict[str, str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen(["taskset", "-c", "0", *cmd], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return wait_healthy(proc, port, f"{cmd} did not start")


async def _prepare(settings: Settings, proofs_needed: int) -> tuple[str, list[str]]:
    svc = await Services.open(settings)
    await svc.start()
    try:
        await convenios.save_convenio(
            svc, "BENCH", ConvenioCreate(code="BENCH", name="BENCH", total_limit=10**11, tolerance=0)
        )
        for i in range(PARTICIPANTS):
            await participants.save_participant(
                svc, "BENCH", f"P{i:04d}", ParticipantCreate(code=f"P{i:04d}", name="x", limit=10**8)
            )
        token, _ = await apikeys.create(svc, frozenset(Permission), name="bench")
        proofs = [await mint_proof(svc, "BENCH", f"P{i % PARTICIPANTS:04d}") for i in range(proofs_needed)]
        return token, proofs
    finally:
        await svc.close()


def _phase(name: str, port: int, make, requests: int, concurrency: int) -> dict:
    asyncio.run(http_load.run("127.0.0.1", port, make, min(1000, requests // 10), concurrency))  # warm-up
    result = asyncio.run(http_load.run("127.0.0.1", port, make, requests, concurrency))
    summary = result.summary()
    print(
        f"{name:>10}: {summary['rate']:>8.0f} req/s  p50 {summary['p50_ms']:.2f} ms  "
        f"p99 {summary['p99_ms']:.2f} ms  {summary['statuses']}"
    )
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--appendfsync", default="everysec", choices=["always", "everysec", "off"])
    args = ap.parse_args()

    os.sched_setaffinity(0, {1})
    root = Path(tempfile.mkdtemp(prefix="convenio-bench-", dir="/tmp"))
    redis = embedded.EmbeddedRedis(root / "redis", appendfsync=args.appendfsync).start()
    subprocess.run(["taskset", "-p", "-c", "1", str(redis.proc.pid)], check=True, stdout=subprocess.DEVNULL)
    pepper = "bench-pepper"
    settings = Settings(redis_url=redis.url, pepper=pepper.encode(), key_prefix="bench")
    env = {**os.environ, "REDIS_URL": redis.url, "CONVENIO_PEPPER": pepper, "CONVENIO_KEY_PREFIX": "bench"}
    warm = min(1000, args.requests // 10)
    token, proofs = asyncio.run(_prepare(settings, args.requests + warm))
    auth = {"Authorization": f"Bearer {token}"}
    results: dict[str, dict] = {}
    try:
        echo_port, gw_port = embedded.free_port(), embedded.free_port()
        sample = msgspec.json.encode(
            {
                "convenio": "BENCH",
                "participant": "P0001",
                "amount": 100,
                "terminal": "PDV01",
                "store": "LOJA01",
                "sale": "V000001",
                "proof": proofs[0],
            }
        )
        echo = _serve(
            echo_command(echo_port),
            env,
            echo_port,
        )
        try:
            results["echo"] = _phase(
                "echo", echo_port, lambda i: http_load.request("POST", "/echo", sample), args.requests, args.concurrency
            )
        finally:
            stop(echo)

        gateway = _serve(
            [sys.executable, "-m", "ledger.cli", "serve", "--port", str(gw_port), "--log-level", "warning"],
            env,
            gw_port,
        )
        try:
            results["limit"] = _phase(
                "limit",
                gw_port,
                lambda i: http_load.request(
                    "GET", f"/v1/convenios/BENCH/participants/P{i % PARTICIPANTS:04d}/limit", headers=auth
                ),
                args.requests,
                args.concurrency,
            )
            owners = {p: f"P{i % PARTICIPANTS:04d}" for i, p in enumerate(proofs)}
            pending = iter(proofs)

            def hold(i: int) -> bytes:
                proof = next(pending)
                body = msgspec.json.encode(
                    {
                        "convenio": "BENCH",
                        "participant": owners[proof],
                        "amount": 100,
                        "terminal": "PDV01",
                        "store": "LOJA01",
                        "sale": f"V{i}",
                        "proof": proof,
                    }
                )
                return http_load.request(
                    "POST", "/v1/empenhos", body, {**auth, "Idempotency-Key": f"bench-{proof[:24]}"}
                )

            results["hold"] = _phase("hold", gw_port, hold, args.requests, args.concurrency)
        finally:
            stop(gateway)
    finally:
        redis.stop()

    ratios = {
        "hold_vs_echo": round(results["hold"]["rate"] / results["echo"]["rate"], 3),
        "limit_vs_echo": round(results["limit"]["rate"] / results["echo"]["rate"], 3),
    }
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "pinning": "server under test alone on core 0; load generator and Redis on core 1",
        "settings": vars(args),
        "results": results,
        "ratios": ratios,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{datetime.date.today().isoformat()}-core.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"ratios: {ratios}\nwritten {out}")


if __name__ == "__main__":
    main()
