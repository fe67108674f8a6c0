"""Where a hold's microseconds go: one gateway worker (core 0) at its maximum rate on holds,
sampled by py-spy, each sample put in one part of the hot path by its innermost frame that
belongs to one; the worker's CPU time per hold split in those shares.

    .venv/bin/python -m bench.profile [--holds N] [--out bench/results/DATE-profile.md]

The echo (baseline i) is measured the same way, in the same run, for the per-request floor.
py-spy (a profiler, not a dependency of the product) comes with the bench extra; bench/run
runs this as scenario (y) and puts its table in the dated report.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import http_load, scenarios
from bench.redis_ceiling import cpu_seconds
from bench.stack import BenchStack, pin_here
from ledger.ops import embedded

# (part, what a frame's "function (file:line)" matches): the first part whose pattern matches
# the innermost frame that any part matches takes the sample
PARTS = [
    ("metrics", r"prometheus_client|gateway/platform/metrics"),
    ("logging", r"/logging/"),
    ("ids and clock (ULIDs, RFC 3339)", r"gateway/platform/(ids|clock)\.py"),
    ("Redis client (RESP: send, parse)", r"gateway/platform/redis/(resp|cluster)\.py|hiredis"),
    ("scripts (call, decode the reply)", r"gateway/platform/redis/scripts\.py"),
    ("auth (API key, store scope)", r"gateway/(auth|stores)/"),
    ("hold handler (Idempotency-Key claim, the call, the answer)", r"gateway/holds/|gateway/decisions/"),
    ("HTTP edge (body decode, errors, JSON out)", r"gateway/platform/http/|msgspec"),
    ("Starlette (routing, middleware, Request/Response)", r"starlette/"),
    ("uvicorn + httptools (parse, send)", r"uvicorn/|httptools"),
    ("asyncio event loop", r"asyncio/|uvloop"),
]


def classify(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):  # innermost first
        for part, pattern in PARTS:
            if re.search(pattern, frame):
                return part
    return "other"


def record(pid: int, seconds: float, path: Path) -> None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    cmd = [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "400"]
    subprocess.run([*cmd, "--format", "raw", "--output", str(path), "--nonblocking"], check=True, capture_output=True)


def shares(path: Path) -> tuple[dict[str, int], int]:
    counts: dict[str, int] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            counts[classify(stack)] += int(n)
    return counts, sum(counts.values())


async def measure(port: int, pid: int, work, units: int, root: Path, name: str) -> dict:
    await http_load.closed("127.0.0.1", port, work, units // 10, 32, 10)  # warm-up
    cpu = cpu_seconds(pid)
    task = asyncio.create_task(http_load.closed("127.0.0.1", port, work, units, 32, 60))
    raw = root / f"{name}.txt"
    await asyncio.sleep(0.3)
    await asyncio.to_thread(record, pid, 3, raw)
    r = await task
    used = cpu_seconds(pid) - cpu
    counts, total = shares(raw)
    return {"rate": r.rate, "us_per": used / max(r.requests, 1) * 1e6, "counts": counts, "samples": total}


async def run(holds: int, root: Path) -> dict:
    stack = BenchStack(root).start()
    try:
        svc = await stack.gateway()
        rng = random.Random(7)
        pop = await scenarios.populate(svc, 500, 1, 1, rng)
        minted = await scenarios.mint(svc, "SPREAD", pop.spread, holds + holds // 10 + 10, rng)
        await svc.close()
        sales = scenarios.Sales(pop, "SPREAD", minted, rng)
        echo_proc, echo_port = stack.serve_echo()
        sample = scenarios.hold_request(pop, "SPREAD", "S000001", "x" * 43, "k").split(b"\r\n\r\n", 1)[1]
        echo = await measure(echo_port, echo_proc.pid, scenarios.echo(sample), holds * 2, root, "echo")
        gw_proc, port = stack.serve_gateway()
        hold = await measure(port, gw_proc.pid, sales.hold(), holds, root, "hold")
    finally:
        stack.stop()
    return {"echo": echo, "hold": hold}


def table(out: dict, command: str) -> str:
    hold, echo = out["hold"], out["echo"]
    lines = [
        f"# Where a hold's time goes ({datetime.date.today().isoformat()})",
        "",
        f"Made by `{command}` on this machine (2 cores): one gateway worker on core 0 at its maximum",
        "rate on holds (32 connections, SPREAD convênio, proofs minted beforehand), py-spy sampling",
        "it at 400 Hz for 3 s; each sample goes to the part of its innermost frame that a part names",
        "(bench/profile.py, PARTS). The echo (a bare Starlette app served the same way) in the same run.",
        "",
        f"- holds: {hold['rate']:.0f}/s, **{hold['us_per']:.0f} µs of the worker's CPU per hold**"
        f" ({hold['samples']} samples)",
        f"- echo: {echo['rate']:.0f}/s, **{echo['us_per']:.0f} µs per request** ({echo['samples']} samples)",
        f"- hold_vs_echo (CPU per request): {echo['us_per'] / hold['us_per']:.2f}",
        "",
        "| part | share of a hold | µs per hold | echo: µs per request |",
        "| --- | ---: | ---: | ---: |",
    ]
    parts = [p for p, _ in PARTS] + ["other"]
    for part in sorted(parts, key=lambda p: -hold["counts"].get(p, 0)):
        h = hold["counts"].get(part, 0) / max(hold["samples"], 1)
        e = echo["counts"].get(part, 0) / max(echo["samples"], 1)
        if h or e:
            lines.append(f"| {part} | {h:.0%} | {h * hold['us_per']:.0f} | {e * echo['us_per']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--holds", type=int, default=20_000)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--keep", type=Path, help="keep py-spy's raw samples (hold.txt, echo.txt) in this folder")
    args = ap.parse_args(argv)
    embedded.ensure_installed()
    pin_here()
    root = Path(tempfile.mkdtemp(prefix="convenio-profile-", dir="/tmp"))
    root.chmod(0o755)
    try:
        out = asyncio.run(run(args.holds, root))
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for name in ("hold.txt", "echo.txt"):
                shutil.copy(root / name, args.keep / name)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = table(out, "python -m bench.profile" + (f" --holds {args.holds}" if args.holds != 20_000 else ""))
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
