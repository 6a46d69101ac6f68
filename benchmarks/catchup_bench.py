"""Benchmark: catching up on closed history vs the naive range query over the same days.

A new source starts with its whole history to collect. The collector (range queries, chunks of
buckets) and, for the record, the collector one bucket per query, are timed in child processes
(peak RSS of each) against the naive ``query_range`` of
``sum by (user, tier, model) (increase(m[1h]))`` with a 1 h step that today's dashboards run,
on the same Prometheus, side by side in one run: Debian's 2.42 and Prometheus 3.16 (the same
blocks).

    PYTHONPATH=. python -m benchmarks.catchup_bench [--series N] [--days D]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import requests

from benchmarks import results
from benchmarks.collect_bench import write_series
from chargeback.adapters.ledger import Ledger
from chargeback.adapters.prometheus import PrometheusClient, PrometheusSettings
from chargeback.api.source import SourceSpec
from chargeback.services.collect import Collector, CollectorSettings
from chargeback.testing.prometheus import PrometheusServer
from chargeback.testing.simulator import HOUR_MS

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_767_225_600_000
MARKERS = ("<!-- catch-up -->", "<!-- /catch-up -->")


def naive_range(url: str, start_ms: int, end_ms: int) -> float:
    """Seconds for the dashboards' hourly increase over (start, end], decoded as any client does."""
    query = 'sum by (user, tier, model) (increase(authorized_hits{model!=""}[1h]))'
    data = {
        "query": query,
        "start": f"{(start_ms + HOUR_MS) / 1000:.3f}",
        "end": f"{end_ms / 1000:.3f}",
        "step": "3600",
    }
    began = time.perf_counter()
    response = requests.post(f"{url}/api/v1/query_range", data=data, timeout=3600)
    response.raise_for_status()
    body = orjson.loads(response.content)
    if body["status"] != "success" or not body["data"]["result"]:
        raise RuntimeError(f"naive query failed: {str(body)[:200]}")
    return time.perf_counter() - began


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of process ``pid``, or of this process, so far."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def catch_up(
    url: str, dsn: str, span: tuple[int, int], chunk: int, server_pid: int
) -> dict[str, float]:
    """Bootstrap at the span's start (not timed); time the collection of the span.

    Also the CPU seconds the collector (this process) and Prometheus spent meanwhile.
    """
    ledger = Ledger(dsn)
    settings = CollectorSettings(catchup_buckets=chunk)
    collector = Collector(PrometheusClient(PrometheusSettings(url)), ledger, settings)
    collector.collect(SourceSpec(), span[0], span[0])
    ours, theirs = cpu_seconds(), cpu_seconds(server_pid)
    began = time.perf_counter()
    result = collector.collect(SourceSpec(), *span)
    return {
        "seconds": time.perf_counter() - began,
        "collector_cpu_s": cpu_seconds() - ours,
        "prometheus_cpu_s": cpu_seconds(server_pid) - theirs,
        "tokens": result.tokens,
    }


def child(url: str, workdir: Path, span: tuple[int, int], chunk: int, pid: int) -> dict[str, float]:
    """One catch-up in a fresh process: seconds, CPU seconds, peak RSS (VmHWM) and tokens."""
    dsn = f"sqlite:///{workdir}/chunk{chunk}-{time.monotonic_ns()}.db"
    code = (
        "import json; from benchmarks.catchup_bench import catch_up; "
        "from benchmarks.collect_bench import peak_rss_mib; "
        f"m = catch_up({url!r}, {dsn!r}, {span!r}, {chunk}, {pid}); "
        "print(json.dumps({**m, 'rss_mib': peak_rss_mib()}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    measured: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return measured


def measure(
    url: str, workdir: Path, span: tuple[int, int], rounds: int, pid: int
) -> dict[str, Any]:
    """Naive and ranged catch-up alternating ``rounds`` times, then one bucket-by-bucket run."""
    naive_range(url, *span)  # warm Prometheus' caches once for every method
    naive, naive_cpu, ranged = [], [], []
    for _ in range(rounds):
        ranged.append(child(url, workdir, span, CollectorSettings.catchup_buckets, pid))
        before = cpu_seconds(pid)
        naive.append(naive_range(url, *span))
        naive_cpu.append(cpu_seconds(pid) - before)
    per_bucket = child(url, workdir, span, 1, pid)
    if {r["tokens"] for r in ranged} != {per_bucket["tokens"]}:
        raise RuntimeError(f"catch-up paths disagree: {ranged} vs {per_bucket}")
    ours = statistics.median(r["seconds"] for r in ranged)
    return {
        "naive_s": statistics.median(naive),
        "ours_s": ours,
        "ratio": ours / statistics.median(naive),
        "rss_mib": max(r["rss_mib"] for r in ranged),
        "naive_prometheus_cpu_s": statistics.median(naive_cpu),
        "prometheus_cpu_s": statistics.median(r["prometheus_cpu_s"] for r in ranged),
        "collector_cpu_s": statistics.median(r["collector_cpu_s"] for r in ranged),
        "per_bucket_s": per_bucket["seconds"],
        "per_bucket_rss_mib": per_bucket["rss_mib"],
        "tokens": per_bucket["tokens"],
    }


def run(series: int = 100_000, days: int = 2, rounds: int = 2) -> dict[str, Any]:
    """Write the history once, backfill it once, measure it on both Prometheus versions."""
    with tempfile.TemporaryDirectory(prefix="bench-catchup-") as scratch:
        workdir = Path(scratch)
        om = workdir / "series.om"
        began = time.perf_counter()
        write_series(om, series, hours=days * 24 + 1)
        span = (T0 + HOUR_MS, T0 + (days * 24 + 1) * HOUR_MS)
        measured: dict[str, Any] = {"series": series, "days": days}
        with PrometheusServer(workdir / "p2", openmetrics=om) as p2:
            measured["setup_s"] = time.perf_counter() - began
            om.unlink()
            measured["2.42"] = measure(p2.url, workdir, span, rounds, _pid(p2))
        shutil.copytree(
            workdir / "p2" / "tsdb",
            workdir / "p3" / "tsdb",
            ignore=shutil.ignore_patterns("lock", "wal", "chunks_head", "queries.active"),
        )
        with PrometheusServer(workdir / "p3", program="prometheus3") as p3:
            measured["3.16"] = measure(p3.url, workdir, span, rounds, _pid(p3))
        return measured


def _pid(server: PrometheusServer) -> int:
    pid = server.process.pid
    if pid is None:
        raise RuntimeError("Prometheus is not running")
    return pid


def _size(measured: dict[str, Any]) -> str:
    return f"{measured['days']} days at {measured['series'] // 1000}k series"


def record(measured: dict[str, Any]) -> None:
    """Write the figures to results.json and the section of docs/benchmarks.md."""
    size = _size(measured)
    entries = []
    for version, target in (("3.16", 2.0), ("2.42", None)):
        m = measured[version]
        entries += [
            results.entry(f"catch-up {size}, Prometheus {version}", m["ours_s"], "s",
                          m["naive_s"], target),
            results.entry(f"collector peak RSS, catch-up {size}, Prometheus {version}",
                          m["rss_mib"], "MiB", None, 400),
        ]  # fmt: skip
    results.record(entries)
    results.write_section(section(measured), MARKERS)


def _row(version: str, m: dict[str, Any]) -> str:
    return (
        f"| {version} | {m['ours_s']:.1f} s | {m['naive_s']:.1f} s | **{m['ratio']:.2f}x** "
        f"| {m['rss_mib']:.0f} MiB "
        f"| {m['prometheus_cpu_s']:.1f} s ({m['naive_prometheus_cpu_s']:.1f} s) "
        f"| {m['collector_cpu_s']:.1f} s "
        f"| {m['per_bucket_s']:.1f} s ({m['per_bucket_rss_mib']:.0f} MiB) |"
    )


def section(measured: dict[str, Any]) -> str:
    """The section of docs/benchmarks.md, between its markers."""
    size = _size(measured)
    rows = "\n".join(_row(version, measured[version]) for version in ("3.16", "2.42"))
    header = (
        "| Prometheus | catch-up | naive `query_range` | ratio | peak RSS "
        "| Prometheus CPU (naive) | collector CPU | bucket by bucket |"
    )
    return f"""{MARKERS[0]}
## Catch-up: {size}

A new source with its whole history to collect: {measured["series"]:,} series (5-minute
scrapes, 2 replicas per user, one series in 500 reset once) over {measured["days"]} days,
{measured["days"] * 24} hourly buckets. The collector (bootstrapped first, untimed; a fresh
process per run, SQLite ledger) against the naive `query_range` of
`sum by (user, tier, model) (increase(m[1h]))` with a 1 h step over the same days, decoded as
any client does; alternating, median of 2 rounds; one bucket-by-bucket run for comparison.
Every run counted the same {measured["2.42"]["tokens"]:,} tokens. Measured by
`PYTHONPATH=. python -m benchmarks.catchup_bench` (part of `make bench`).

{header}
|---|---|---|---|---|---|---|---|
{rows}

CPU columns: seconds of CPU Prometheus spent answering the catch-up's queries (in brackets: the
naive query) and the collector process spent, while the catch-up ran; both share this machine's
2 cores, so their sum over 2 bounds the catch-up's time from below.
Targets (scale issue): catch-up <= 2x the naive range query on 3.16 (the 2.42 ratio reported),
peak RSS <= 400 MiB. Where the time goes: docs/scaling.md, "Catching up".
{MARKERS[1]}"""


def main() -> None:
    """Run the catch-up benchmark and record it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=2)
    args = parser.parse_args()
    measured = run(args.series, args.days)
    print(json.dumps(measured, indent=2))
    record(measured)


if __name__ == "__main__":
    main()
