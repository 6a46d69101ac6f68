"""Benchmark: exact collection of one hour at 100k active series vs the naive increase() query.

Both run against the same real Prometheus, side by side and alternating, in one process; the ratio
is what we report. Peak RSS of the collector is measured in a child process.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from chargeback.adapters.ledger import Ledger
from chargeback.adapters.prometheus import PrometheusClient, PrometheusSettings
from chargeback.api.source import SourceSpec
from chargeback.services.collect import Collector
from chargeback.testing.prometheus import PrometheusServer
from chargeback.testing.simulator import HOUR_MS, Scenario, simulate

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_767_225_600_000
SCRAPE_MS = 300_000
MODELS = ("granite", "llama", "mistral", "qwen")
TIERS = ("free", "premium", "enterprise")


def write_series(path: Path, series: int, hours: int, seed: int = 5) -> None:
    """``series`` counters over ``hours`` (one in 500 resets once), as OpenMetrics."""
    rng = random.Random(seed)
    steps = hours * HOUR_MS // SCRAPE_MS
    with path.open("w") as out:
        out.write("# TYPE authorized_hits unknown\n")
        for index in range(series):
            user, model, pod = index // 8, MODELS[(index // 2) % 4], index % 2
            labels = f'user="u{user:06d}",tier="{TIERS[user % 3]}",model="{model}",pod="l{pod}"'
            value = rng.randrange(0, 100_000)
            reset_at = rng.randrange(1, steps) if index % 500 == 0 else -1
            lines = []
            for step in range(steps + 1):
                value = rng.randrange(0, 50) if step == reset_at else value + rng.randrange(0, 400)
                lines.append(
                    f"authorized_hits{{{labels}}} {value} {(T0 + step * SCRAPE_MS) / 1000:.0f}\n"
                )
            out.write("".join(lines))
        out.write("# EOF\n")


def naive_query(client: PrometheusClient, at_ms: int) -> list[dict[str, Any]]:
    """What today's dashboards do for an hour: extrapolating increase(), summed by dimensions."""
    return client.query(
        f'sum by (user, tier, model) (increase(authorized_hits{{model!=""}}[1h] @ {at_ms / 1000}))',
        at_ms,
    )


def collect_hour(url: str, dsn: str, start_ms: int, end_ms: int) -> float:
    """Bootstrap at ``start_ms`` (not timed) and time the collection of (start, end]."""
    ledger = Ledger(dsn)
    collector = Collector(PrometheusClient(PrometheusSettings(url)), ledger)
    collector.collect(SourceSpec(), start_ms, start_ms)
    began = time.perf_counter()
    collector.collect(SourceSpec(), start_ms, end_ms)
    return time.perf_counter() - began


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child_peak_rss(url: str, workdir: Path, start_ms: int, end_ms: int) -> tuple[float, float]:
    """Run one collection in a fresh process; return (seconds, peak RSS MiB)."""
    # VmHWM, not ru_maxrss: on Linux a child's ru_maxrss starts from its parent's at fork.
    code = (
        "import json; from benchmarks.collect_bench import collect_hour, peak_rss_mib; "
        f"s=collect_hour({url!r}, 'sqlite:///{workdir}/rss.db', {start_ms}, {end_ms}); "
        "print(json.dumps([s, peak_rss_mib()]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    seconds, rss = json.loads(out.stdout.strip().splitlines()[-1])
    return float(seconds), float(rss)


def run_scale(
    series: int = 100_000, rounds: int = 3, program: str = "prometheus"
) -> dict[str, Any]:
    """The 100k-series comparison, on Debian's Prometheus 2 or on Prometheus 3 (anchored)."""
    with tempfile.TemporaryDirectory(prefix="bench-collect-") as scratch:
        workdir = Path(scratch)
        om = workdir / "series.om"
        began = time.perf_counter()
        write_series(om, series, hours=2)
        with PrometheusServer(workdir / "prom", openmetrics=om, program=program) as prom:
            setup = time.perf_counter() - began
            client = PrometheusClient(PrometheusSettings(prom.url))
            start, end = T0 + HOUR_MS, T0 + 2 * HOUR_MS
            naive_query(client, end)  # warm caches once for both methods
            ours, naive = [], []
            for round_ in range(rounds):
                ours.append(collect_hour(prom.url, f"sqlite:///{workdir}/r{round_}.db", start, end))
                t = time.perf_counter()
                naive_query(client, end)
                naive.append(time.perf_counter() - t)
            rss_seconds, rss = child_peak_rss(prom.url, workdir, start, end)
        return {
            "series": series,
            "setup_s": setup,
            "ours_s": statistics.median(ours),
            "naive_s": statistics.median(naive),
            "ratio": statistics.median(ours) / statistics.median(naive),
            "child_s": rss_seconds,
            "peak_rss_mib": rss,
        }


def run_accuracy() -> dict[str, Any]:
    """Token error of naive increase() vs ours on the simulator scenario, per hour bucket."""
    scenario = Scenario(
        start_ms=T0, hours=24, users=200, replicas=2, scrape_interval_ms=60_000, seed=3,
        restarts=((0, T0 + 6 * HOUR_MS + 90_000), (1, T0 + 15 * HOUR_MS + 30_000)),
        scrape_gaps=((T0 + 10 * HOUR_MS + 600_000, T0 + 11 * HOUR_MS + 300_000),),
    )  # fmt: skip
    sim = simulate(scenario)
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as scratch:
        workdir = Path(scratch)
        end = T0 + 24 * HOUR_MS
        with PrometheusServer(
            workdir / "prom", openmetrics=sim.write_openmetrics(workdir / "s.om")
        ) as p:
            client = PrometheusClient(PrometheusSettings(p.url))
            ledger = Ledger(f"sqlite:///{workdir}/acc.db")
            result = Collector(client, ledger).collect(SourceSpec(), T0, end)
            truth: dict[tuple[str, str, str, int], int] = sim.truth(T0, end)
            ours: dict[tuple[str, str, str, int], int] = defaultdict(int)
            for row in ledger.usage(result.source_id):
                ours[(row.user, row.tier, row.model, row.bucket_start_ms)] += row.tokens
            naive: dict[tuple[str, str, str, int], float] = defaultdict(float)
            for hour in range(1, 25):
                at = T0 + hour * HOUR_MS
                for item in naive_query(client, at):
                    m = item["metric"]
                    naive[(m["user"], m["tier"], m["model"], at - HOUR_MS)] += float(
                        item["value"][1]
                    )
        keys = set(truth) | set(ours) | set(naive)
        return {
            "truth_tokens": sum(truth.values()),
            "ours_abs_error": sum(abs(ours.get(k, 0) - truth.get(k, 0)) for k in keys),
            "naive_abs_error": round(sum(abs(naive.get(k, 0) - truth.get(k, 0)) for k in keys)),
            "naive_total": round(sum(naive.values())),
            "ours_total": sum(ours.values()),
        }
