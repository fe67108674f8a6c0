"""Baseline: the ERP's way, served like ours (bench/erp_gateway.py), measured as our gateway is.

Its own durable Postgres (every core, as baseline iii), the ERP gateway alone on core 0 (as ours),
and the very request bytes `scenarios.Sales` sends ours: hold + commit on the hot shared pool
(HOT) and over many participants (SPREAD): the max rate in a closed loop, then p99 in an open loop
at the rates ours was measured at (50 % of its max) and at 50 % of the ERP's own max.

    .venv/bin/python -m bench.erp [--smoke] [--seconds S] [--units N] [--concurrency C]

Standalone it measures the ERP gateway alone (our figures come from bench/__main__.py, which
passes its own results to `compare`); --smoke is a tiny run that fails unless every answer is 2xx.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import asyncpg

from bench import http_load, pg_baseline, redis_ceiling, report, scenarios
from bench.erp_gateway import SCHEMA
from bench.stack import SERVER_CORES, pin_here, stop, unpin_here, wait_healthy
from gateway.auth.apikeys import key_id, new_token
from gateway.auth.permissions import Permission
from gateway.platform.config import Settings
from gateway.platform.digests import digest
from ledger.ops import embedded

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
DATABASE = "erp"
#: (label here, convênio, our scenario's name in bench/__main__.py's results)
WORKLOADS = (("hot", "HOT", "c_hot_pool"), ("spread", "SPREAD", "b_hold_commit"))


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def population(spread: int, hot: int = 100) -> scenarios.Population:
    """Who the bench sells to, as `scenarios.populate` names them, without Redis: for a run of
    this module alone (bench/__main__.py passes the population it loaded into ours)."""
    return scenarios.Population(
        token=new_token(),
        integration_key="",
        spread=[f"S{i:06d}" for i in range(spread)],
        hot=[f"H{i:04d}" for i in range(hot)],
        flow=[],
    )


async def create_database(admin_url: str, name: str = DATABASE) -> str:
    """A fresh database on the server `admin_url` names; returns its URL."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_url.rsplit("/", 1)[0] + "/" + name


async def prepare(
    url: str, pop: scenarios.Population, hot_codes: list[str] | None = None, spread_codes: list[str] | None = None
) -> None:
    """The ERP's schema in the (fresh) database at `url`: the population's API key (every
    permission, as ours), HOT sharing one pool row, SPREAD a pool row per participant, with the
    limits `scenarios.populate` gives ours."""
    hot = pop.hot if hot_codes is None else hot_codes
    spread = pop.spread if spread_codes is None else spread_codes
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(SCHEMA)
        codes = ",".join(str(int(p)) for p in sorted(Permission))
        await conn.execute(
            "INSERT INTO api_key (digest, id, permissions) VALUES ($1, $2, $3)",
            digest(pop.token),
            key_id(pop.token),
            codes,
        )
        await conn.executemany(
            "INSERT INTO convenio (code, shared) VALUES ($1, $2)", [("HOT", True), ("SPREAD", False)]
        )
        people = [("HOT", c) for c in hot] + [("SPREAD", c) for c in spread]
        await conn.copy_records_to_table("participant", records=people, columns=["convenio", "code"])
        each = scenarios.BIG // 10**6  # a participant's limit, as ours
        pools = [("HOT", "", scenarios.BIG, scenarios.BIG)] + [("SPREAD", c, each, each) for c in spread]
        await conn.copy_records_to_table(
            "pool", records=pools, columns=["convenio", "holder", "credit_limit", "balance"]
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def mint(url: str, convenio: str, codes: list[str], n: int, rng: random.Random) -> list[tuple[str, str]]:
    """n single-use proofs (stored by digest, valid as long as ours) for participants drawn at random
    from codes: (participant, proof) pairs, as `scenarios.mint` returns them for `scenarios.Sales`."""
    who = [codes[rng.randrange(len(codes))] for _ in range(n)]
    proofs = [secrets.token_urlsafe(32) for _ in range(n)]
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=Settings.proof_ttl_s)
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table(
            "proof",
            records=[(digest(p), convenio, w, expires) for w, p in zip(who, proofs, strict=True)],
            columns=["digest", "convenio", "participant", "expires_at"],
        )
    finally:
        await conn.close()
    return list(zip(who, proofs, strict=True))


def serve(root: Path, url: str, pool_size: int, hold_ttl_s: int) -> tuple[subprocess.Popen, int]:
    """The ERP gateway, one uvicorn worker alone on core 0, as `BenchStack.serve_gateway` serves ours."""
    port = embedded.free_port()
    cmd = ["taskset", "-c", SERVER_CORES, sys.executable, "-m", "bench.erp_gateway", "--port", str(port)]
    env = {**os.environ, "ERP_DATABASE_URL": url, "ERP_POOL_SIZE": str(pool_size), "ERP_HOLD_TTL": str(hold_ttl_s)}
    log = (root / f"erp-gateway-{port}.log").open("ab")
    proc = subprocess.Popen([*cmd, "--log-level", "warning"], env=env, stdout=log, stderr=log, cwd=ROOT)
    return wait_healthy(proc, port, f"the ERP gateway did not start; see {log.name}"), port


async def _workload(
    url: str,
    port: int,
    pid: int,
    pop: scenarios.Population,
    convenio: str,
    seconds: float,
    units: int,
    concurrency: int,
    ours: dict[str, Any] | None,
    rng: random.Random,
) -> dict[str, Any]:
    """Hold + commit on `convenio`, as Bench.scenario measures ours: warm-up, max, then open loops."""
    codes = pop.hot if convenio == "HOT" else pop.spread
    sales = scenarios.Sales(pop, convenio, [], rng)
    work = sales.hold_commit()
    warm = min(200, units // 10)
    levels = http_load.max_loads(concurrency)  # the best of them, as Bench.scenario measures ours
    sales.supply(await mint(url, convenio, codes, warm + units * len(levels), rng))
    await http_load.closed(HOST, port, work, warm, concurrency, 10)
    tried = {}
    for n in levels:
        cpu = redis_ceiling.cpu_seconds(pid)
        r = await http_load.closed(HOST, port, work, units, n, seconds, per_unit=2)
        tried[n] = (r, (redis_ceiling.cpu_seconds(pid) - cpu) / r.seconds)
        say(
            f"  erp {convenio:<7} max {r.rate:>8.0f}/s ({n} conns)  p50 {r.pct(0.5):6.2f} ms  "
            f"p99 {r.pct(0.99):7.2f} ms  gateway busy {tried[n][1]:.0%}  {r.statuses}"
        )
    best = max(tried, key=lambda n: tried[n][0].rate)
    peak, busy = tried[best]
    out: dict[str, Any] = {
        "max": peak.summary() | {"gateway_busy": round(busy, 2)},
        "concurrency": best,
        "max_by_concurrency": {str(n): r.summary() for n, (r, _) in tried.items()},
    }
    rates = {"at_50": peak.rate * 0.5}
    if ours:  # the very rate ours was measured at
        rates["at_ours_50"] = ours["at_50"].get("target_rate") or ours["max"]["rate"] * 0.5
    for name, rate in rates.items():
        sales.supply(await mint(url, convenio, codes, int(rate * seconds) + 10, rng))
        r = await http_load.open_loop(HOST, port, work, rate, seconds, per_unit=2)
        say(
            f"  erp {convenio:<7} @{rate:>7.0f}/s ({name})  p50 {r.pct(0.5):6.2f} ms  p99 {r.pct(0.99):7.2f} ms  "
            f"p99.9 {r.pct(0.999):7.2f} ms  late {r.late}  {r.statuses}"
        )
        out[name] = r.summary() | {"percentiles": report.percentiles(r.latencies_ms)}
    return out


def _ratio(a: float | None, b: float | None, digits: int = 2) -> float | None:
    return round(a / b, digits) if a and b else None


def ratios(erp: dict[str, Any], ours: dict[str, Any]) -> dict[str, float | None]:
    """Ours against the ERP gateway: max rates (ours ÷ ERP), p99 at our 50 % rate (ERP ÷ ours)."""
    out: dict[str, float | None] = {}
    for label, name, key in (("hot", "c_hot_pool", "hot_pool"), ("spread", "b_hold_commit", "spread")):
        mine = ours.get(name)
        if not mine:
            continue
        out[f"{key}_vs_erp_gateway"] = _ratio(mine["max"]["rate"], erp[label]["max"]["rate"])
        at = erp[label].get("at_ours_50")
        if at:
            out[f"{key}_p99_erp_vs_ours"] = _ratio(at["p99_ms"], mine["at_50"]["p99_ms"])
    return out


async def compare(
    root: Path,
    pop: scenarios.Population,
    seconds: float,
    units: int,
    concurrency: int,
    ours: dict[str, Any],
    rng: random.Random,
    hold_ttl_s: int = 10,
) -> dict[str, Any]:
    """Start the ERP's Postgres and gateway under `root`, measure both workloads, stop them.
    `ours`: our results by scenario name (bench/__main__.py's `results`: "c_hot_pool" and
    "b_hold_commit", as `Bench.scenario` stores them; either may be missing, {} for none).
    Returns the ERP's figures, and under "ratios" ours against them."""
    unpin_here()  # Postgres and its backends inherit this: every core
    pg = embedded.EmbeddedPostgres(root / "erp-postgres", durable=True).start()
    pin_here()
    proc = None
    try:
        url = await create_database(pg.url.rsplit("/", 1)[0] + "/postgres")
        await prepare(url, pop)
        # a Postgres connection per load connection up to 64 (the open loop's 64); at the max's
        # four-times load (128 in a full run) requests queue for one, as an ERP's pool would make them
        pool_size = max(64, concurrency)
        out: dict[str, Any] = {"settings": await pg_baseline.settings(url) | {"gateway_pool": pool_size}}
        proc, port = serve(root, url, pool_size, hold_ttl_s)
        for label, convenio, name in WORKLOADS:
            say(f"(erp) {label}: hold then commit on {convenio}, the ERP's way behind our edge")
            out[label] = await _workload(
                url, port, proc.pid, pop, convenio, seconds, units, concurrency, ours.get(name), rng
            )
        out["ratios"] = ratios(out, ours)
    finally:
        if proc is not None:
            stop(proc)
        pg.stop()
    return out


def failures(out: dict[str, Any]) -> list[str]:
    """Every phase that had an answer other than 2xx, or none at all."""
    bad = []
    for label, _, _ in WORKLOADS:
        for phase, r in out.get(label, {}).items():
            if isinstance(r, dict) and "statuses" in r:
                if not r["requests"] or any(not s.startswith("2") for s in r["statuses"]):
                    bad.append(f"{label} {phase}: {r['statuses']}")
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each measured phase (default 5)")
    ap.add_argument("--units", type=int, default=20_000, help="most units of work in a max-rate phase")
    ap.add_argument("--concurrency", type=int, default=32, help="connections in the max-rate phases")
    ap.add_argument("--participants", type=int, default=1000, help="participants of the spread convênio")
    ap.add_argument("--smoke", action="store_true", help="tiny and fast; exit 1 unless every answer is 2xx")
    ap.add_argument("--out", type=Path, help="write the figures here as JSON too")
    ap.add_argument("--seed", type=int, default=20261123)
    args = ap.parse_args(argv)
    if args.smoke:
        args.seconds, args.units, args.concurrency, args.participants = 0.5, 400, 8, 100
    embedded.ensure_installed(say)
    pin_here()
    root = Path(tempfile.mkdtemp(prefix="convenio-erp-", dir="/tmp"))
    root.chmod(0o755)  # the postgres user must reach its folder
    try:
        pop = population(args.participants)
        out = asyncio.run(compare(root, pop, args.seconds, args.units, args.concurrency, {}, random.Random(args.seed)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    bad = failures(out)
    if bad:
        say(f"FAILED: {bad}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
