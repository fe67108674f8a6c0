"""The benchmark's report: the targets it is read against, a Markdown summary and a latency plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: the targets the benchmark is held to, by ratio name: (comparison, bound)
TARGETS: dict[str, list] = {
    "hold_vs_echo": [">=", 0.5],
    "hold_p99_vs_echo_p99_at_50": ["<=", 2.0],
    "hot_pool_vs_postgres": [">=", 10.0],
    "hot_pool_vs_erp_gateway": [">=", 5.0],
    "hot_pool_p99_erp_vs_ours": [">=", 10.0],
    "ledger_vs_peak": [">=", 5.0],
    "redis_us_per_hold": ["<=", 40.0],
    "ledger_vs_copy": [">=", 0.3],
    "password_vs_ceiling": [">=", 0.9],
    "hold_p99_with_passwords_vs_alone": ["<=", 2.0],
    "aof_always_vs_everysec": [">=", 0.0],  # reported, no target
    "scale_hold_rate_vs_thousand": [">=", 0.9],
    # the month at scale (scenario m): seconds at full size (1M participants, 10M journal rows)
    "rollover_seconds": ["<=", 60],
    "rollover_hold_p99_vs_alone": ["<=", 2.0],
    "duplicatas_seconds_month": ["<=", 60],
    "duplicatas_seconds_nightly": ["<=", 60],
    # "grows with the period billed, not with the journal's size": the same period, a 10x journal
    "duplicatas_month_seconds_journal_10m_vs_1m": ["<=", 1.5],
    "duplicatas_day_seconds_journal_10m_vs_1m": ["<=", 1.5],
}
POINTS = (50, 75, 90, 95, 99, 99.9)


def percentiles(latencies_ms: list[float]) -> dict[str, float]:
    data = sorted(latencies_ms)
    if not data:
        return {}
    return {str(p): round(data[min(len(data) - 1, int(len(data) * p / 100))], 3) for p in POINTS}


def capacity(results: dict[str, Any]) -> dict[str, Any] | None:
    """What one core serves, from this run's CPU per unit of work: the gateway's (one worker
    pinned at its max rate is one core busy), Redis's (scenario ii), the ledger writer's and
    Postgres's per event (e), argon2's per password check. A checkout (limit, password, hold,
    commit) costs two single requests, a hold + commit pair, one argon2 verify, and three events
    (password.verified, empenho.held, empenho.committed) for the writer and Postgres."""
    try:
        hold_us = 1e6 / results["b_hold"]["max"]["rate"]
        pair_us = 1e6 / results["b_hold_commit"]["max"]["rate"]
        redis_hold = results["redis_raw_hold"]["cost"]["redis_us_per_call"]
        redis_commit = results["redis_raw_commit"]["cost"]["redis_us_per_call"]
        writer_us = results["e_ledger"]["writer_us_per_event"]
        postgres_us = results["e_ledger"]["postgres_us_per_event"]
        argon2_us = results["password"]["one_verify_ms"] * 1000
    except (KeyError, TypeError, ZeroDivisionError):
        return None
    checkout = {
        "gateway": round(pair_us + 2 * hold_us),
        "argon2": round(argon2_us),
        "redis": round(redis_hold + redis_commit + 2 * redis_hold / 3),  # limit and password: lighter calls
        "writer": round(3 * writer_us),
        "postgres": round(3 * postgres_us),
    }
    total = sum(checkout.values())
    hold = {
        "gateway": round(hold_us),
        "redis": round(redis_hold),
        "writer": round(writer_us),
        "postgres": round(postgres_us),
    }
    return {
        "us_per_checkout": checkout,
        "checkouts_per_core_s": round(1e6 / total, 1),
        "us_per_hold": hold,
        "holds_per_core_s": round(1e6 / sum(hold.values())),
        "redis_holds_per_core_s": round(1e6 / redis_hold),
    }


def capacity_lines(c: dict[str, Any]) -> list[str]:
    ck, h = c["us_per_checkout"], c["us_per_hold"]
    parts = ", ".join(f"{k} {v:,}" for k, v in ck.items())
    lines = [
        "",
        "## What a machine serves (arithmetic from this run's CPU per unit of work)",
        "",
        f"- A checkout (limit, password, hold, commit) takes {sum(ck.values()):,} µs of CPU: {parts}; one core"
        f" serves {c['checkouts_per_core_s']} checkouts a second, so N cores about N × that (argon2 is"
        f" {ck['argon2'] / sum(ck.values()):.0%} of it).",
        f"- A hold alone takes {sum(h.values())} µs: "
        + ", ".join(f"{k} {v}" for k, v in h.items())
        + f"; {c['holds_per_core_s']:,} holds a second per core, all parts included. Redis runs on one core"
        f" per shard master: {c['redis_holds_per_core_s']:,} holds a second each.",
        "- A chain with T terminals each doing one checkout every S seconds at its peak needs"
        " T / S checkouts a second: cores = T / S / the figure above, gateway workers = one per core"
        " left after Redis and Postgres, Redis masters = holds a second / the Redis figure.",
    ]
    return lines


def _met(name: str, value: float | None) -> str:
    if value is None or name not in TARGETS:
        return ""
    op, bound = TARGETS[name]
    if name == "aof_always_vs_everysec":
        return "(no target)"
    ok = value >= bound if op == ">=" else value <= bound
    return f"{'met' if ok else 'NOT met'} (target {op} {bound})"


def markdown(doc: dict[str, Any], plot_name: str) -> str:
    r = doc["results"]
    lines = [
        f"# Benchmark {doc['date']}",
        "",
        f"Machine: {doc['machine']['cores']} cores ({doc['machine']['cpu']}), Python {doc['machine']['python']}. "
        f"Pinning: {doc['pinning']}. Each phase {doc['settings']['seconds']} s or "
        f"{doc['settings']['units']} units at most; the run took {doc['seconds']} s.",
        "",
        "## Ratios (same run, same machine)",
        "",
        "| ratio | value | |",
        "| --- | --- | --- |",
    ]
    for name, value in doc["ratios"].items():
        lines.append(f"| `{name}` | {value} | {_met(name, value)} |")
    lines += [
        "",
        "## Scenarios",
        "",
        "Max: closed loop (each connection sends its next unit when the last is answered), the best of"
        " the run's connections and four times as many (the ERP's gateway likewise). At 50 % and 90 %:"
        " open loop at that share of the max, latency from each unit's due time. A unit is one request,"
        " or hold + commit (b_hold_commit, c_hot_pool), or the whole checkout (a_checkout: 4 requests).",
        "",
        "| scenario | max units/s | p50 / p99 / p99.9 ms at 50 % | p50 / p99 / p99.9 ms at 90 % |",
        "| --- | --- | --- | --- |",
    ]
    for name, out in r.items():
        if not isinstance(out, dict) or "max" not in out or "at_50" not in out:
            continue
        cells = [f"{out['max']['rate']:.0f}" + (f" ({out['concurrency']} conns)" if "concurrency" in out else "")]
        for share in ("at_50", "at_90"):
            a = out[share]
            cells.append(f"{a['p50_ms']:.2f} / {a['p99_ms']:.2f} / {a['p999_ms']:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "postgres_for_update" in r:
        pg = r["postgres_for_update"]
        lines += ["", "## Baselines", ""]
        for label in ("hot", "spread"):
            p = pg[label]
            lines.append(
                f"- Postgres `SELECT … FOR UPDATE` ({label}): {p['rate']:.0f} tx/s, p50 {p['p50_ms']} ms,"
                f" p99 {p['p99_ms']} ms"
            )
    if "erp_gateway" in r:
        g = r["erp_gateway"]
        for label, ours in (("hot", "c_hot_pool"), ("spread", "b_hold_commit")):
            w = g.get(label)
            if not w:
                continue
            line = (
                f"- The ERP's gateway (Starlette + asyncpg, `SELECT … FOR UPDATE`), {label}: {w['max']['rate']:.0f}"
                f" hold + commit pairs/s (p99 {w['max']['p99_ms']} ms)"
            )
            if "at_ours_50" in w:
                a = w["at_ours_50"]
                line += f"; at our {ours} 50 % rate ({a.get('target_rate', 0):.0f}/s) p99 {a['p99_ms']} ms"
            lines.append(line)
    if "redis_raw_hold" in r:
        raw = r["redis_raw_hold"]
        lines.append(
            f"- Raw `empenho_hold.lua`, pipelined from one Python client: {raw['rate']:.0f} holds/s with Redis"
            f" {raw.get('redis_busy', 0):.0%} busy (about {raw.get('redis_capacity_estimate_per_s', 0)}/s at 100 %)"
        )
    for name, what in (("redis_raw_hold", "hold"), ("redis_raw_commit", "commit")):
        cost = r.get(name, {}).get("cost")
        if cost:
            top = ", ".join(f"{k} {v}" for k, v in list(cost["commands_us"].items())[:6])
            lines.append(
                f"- Redis per {what} (pipelined, `appendfsync always`): {cost['redis_us_per_call']} µs of its CPU,"
                f" of which the script {cost['script_us_per_call']} µs (its Redis commands"
                f" {cost['commands_us_per_call']} µs: {top}; Lua and cjson {cost['lua_us_per_call']} µs);"
                f" {cost['aof_bytes_per_call']} bytes of AOF, {cost['stream_bytes_per_call']} bytes of stream"
            )
    if "echo" in r:
        lines.append(f"- Starlette echo, one worker: {r['echo']['max']['rate']:.0f} requests/s")
    if "e_ledger" in r:
        e = r["e_ledger"]
        drained = e["events_per_s"] if isinstance(e["events_per_s"], dict) else {"writers_1": e["events_per_s"]}
        writers = ", ".join(f"{k.split('_')[1]} writer(s) {v} events/s" for k, v in sorted(drained.items()))
        lines.append(f"- Ledger drain: {writers}; COPY ceiling {e['copy_rows_per_s']} rows/s")
    if "password" in r:
        p = r["password"]
        lines.append(
            f"- Password checks: {p['rate']:.0f}/s; one argon2id verify {p['one_verify_ms']} ms;"
            f" ceiling {p['ceiling_per_s']:.0f}/s"
        )
    if "f_scale" in r:
        f = r["f_scale"]
        lines.append(
            f"- Scale: {f['participants']:,} participants, {f['redis_bytes_per_participant']} bytes of Redis each"
            f" (loaded in {f['load_seconds']} s); holds {f['scale']['rate']:.0f}/s (p99 {f['scale']['p99_ms']} ms)"
            f" vs {f['thousand']['rate']:.0f}/s (p99 {f['thousand']['p99_ms']} ms) over a thousand"
        )
    if "aof" in r:
        a = r["aof"]
        lines.append(
            f"- AOF: holds {a['always']['rate']:.0f}/s with `appendfsync always`,"
            f" {a['everysec']['rate']:.0f}/s with `everysec`"
        )
    if "w_workers" in r:
        w = r["w_workers"]
        lines.append(
            f"- Gateway workers (unpinned, sharing the 2 cores with Redis and the load): holds"
            f" {w['workers_1']['rate']:.0f}/s on 1, {w['workers_2']['rate']:.0f}/s on 2"
        )
    if doc.get("capacity"):
        lines += capacity_lines(doc["capacity"])
    if "m_month" in r:
        lines += month_lines(r["m_month"])
    if "y_profile" in r:  # bench.profile's own page, one level down
        lines += [""] + ["#" + ln if ln.startswith("# ") else ln for ln in r["y_profile"].strip().splitlines()]
    for note in doc.get("notes", []):
        lines.append(f"- Note: {note}")
    lines += ["", f"![latency]({plot_name})", ""]
    return "\n".join(lines)


def month_lines(m: dict[str, Any]) -> list[str]:
    """Scenario (m), bench/month.py: the rollover while holds go on, and duplicata generation."""
    lines = ["", "## The month at scale (scenario m, `bench.month`)", ""]
    roll = m.get("rollover")
    if roll:
        alone, during, busy = roll["holds_alone"], roll["holds_during"], roll["busy_during_rollover"]
        store, calls = roll["ledger_store"], roll["redis_batch_calls"]
        events = roll.get("redis_latency_events", {})
        stalls = ", ".join(f"{name} {e['longest_ms']}" for name, e in events.items())
        lines += [
            f"- Rollover: {roll['participants']:,} participants in {roll['rollover_seconds']} s"
            f" ({roll['participants_per_s']:,}/s), balances checked: {'ok' if roll['check']['ok'] else 'WRONG'}."
            f" Holds at {roll['hold_rate']:.0f}/s ({m['settings']['hold_share_of_max']:.0%} of their max"
            f" {roll['hold_max']['rate']:.0f}/s): p50 / p99 {alone['p50_ms']} / {alone['p99_ms']} ms alone"
            f" (before and after), {during['p50_ms']} / {during['p99_ms']} ms during it ({during['requests']} holds);"
            f" p99 ratio {roll['hold_p99_vs_alone']}.",
            f"- During the rollover: Redis {busy.get('redis', 0):.0%} busy, core 0 {busy.get('cpu0', 0):.0%},"
            f" core 1 {busy.get('cpu1', 0):.0%}; its script calls over 1 ms: {calls['over_1ms']}, median"
            f" {calls['median_of_those_ms']} ms, longest {calls['longest_ms']} ms. The rollover's process used"
            f" {roll['worker']['cpu_s']} CPU s (cores {roll['worker']['cores']}). Redis's latency events"
            f" (longest ms): {stalls or 'none over 5 ms'}.",
            f"- The ledger writer then stored the rollover's {store['events']:,} events in {store['seconds']} s"
            f" ({store['participants_per_s']:,} participants/s).",
        ]
    dup = m.get("duplicatas")
    if dup:
        for label in ("large", "small"):
            p = dup[label]
            lines.append(
                f"- Duplicatas over {p['journal_rows']:,} journal rows ({p['movements']:,} movements;"
                f" {p['journal_and_movements_bytes'] / 2**30:.1f} GiB): a DAILY convênio's day"
                f" {p['day']['seconds']} s ({p['day']['items_billed']:,} movements billed), a MONTHLY one's month"
                f" {p['month']['seconds']} s ({p['month']['items_billed']:,}), the nightly run (every convênio's"
                f" month) {p['nightly']['seconds']} s ({p['nightly']['items_billed']:,})."
            )
        lines.append(f"- The period is read by: `{dup['large']['explain_month']['movements_scan']}`")
    for note in m.get("notes", []):
        lines.append(f"- Note (m): {note}")
    return lines


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, share in zip(axes, ("at_50", "at_90"), strict=True):
        for name, out in doc["results"].items():
            if not isinstance(out, dict) or share not in out or "percentiles" not in out[share]:
                continue
            pts = out[share]["percentiles"]
            xs = [float(p) for p in pts]
            ax.plot(range(len(xs)), list(pts.values()), marker="o", label=f"{name} ({out[share]['rate']:.0f}/s)")
            ax.set_xticks(range(len(xs)), [f"p{p:g}" for p in xs])
        ax.set_yscale("log")
        ax.set_title(f"latency at {share[3:]} % of each scenario's max rate")
        ax.set_ylabel("ms")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a run with no open-loop scenario (--only m) draws none
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"
