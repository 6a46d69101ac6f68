"""``make bench``: run every benchmark side by side and write docs/benchmarks.md."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from benchmarks import (
    catchup_bench,
    flags_bench,
    image_bench,
    operator_bench,
    report_bench,
    results,
)
from benchmarks.collect_bench import run_accuracy, run_scale
from benchmarks.forecast_bench import backtest, section
from benchmarks.operator_bench import run_operator_scale, status_at

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    """One line describing where the numbers were measured."""
    mem = next(
        (line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
         if line.startswith("MemTotal")),
        "?",
    )  # fmt: skip
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {int(mem) // 1024 // 1024} GiB, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def _row(scale: dict[str, Any]) -> str:
    return (
        f"{scale['ours_s']:.2f} s | {scale['naive_s']:.2f} s | **{scale['ratio']:.2f}x** | "
        f"{scale['peak_rss_mib']:.0f} MiB"
    )


def _kinds(by_kind: dict[str, int]) -> str:
    return ", ".join(f"{kind} {count:,}" for kind, count in by_kind.items())


def main() -> None:
    """Run the benchmarks and write docs/benchmarks.md."""
    series = int(os.environ.get("BENCH_SERIES", "100000"))
    accuracy = run_accuracy()
    scale = run_scale(series)
    scale3 = run_scale(series, program="prometheus3")
    catchup = catchup_bench.run(series)
    catchup_bench.record(catchup)
    flags = flags_bench.run(series)
    flags_bench.record(flags)
    operator = run_operator_scale()
    status_bytes = len(json.dumps(status_at(10_000)).encode())
    backtested = backtest()
    forecast = section(backtested)
    operator_bench.record(operator)
    reports = report_bench.run()
    report_bench.record(reports)
    results.record([
        results.entry("collect one hour, 100k series, Prometheus 2.42", scale["ours_s"], "s",
                      scale["naive_s"], None),  # the target is for 3.x; 2.42 is reported
        results.entry("collect one hour, 100k series, Prometheus 3.16", scale3["ours_s"], "s",
                      scale3["naive_s"], 2.5),
        results.entry("collector peak RSS, one hour at 100k series, Prometheus 3.16",
                      scale3["peak_rss_mib"], "MiB", None, 300),
        results.entry("forecast MAPE, next-week tokens per model", backtested["ours_mape"], "%",
                      backtested["naive_mape"], None),
        results.entry("absolute error vs ground truth, 24 h simulated traffic (naive: baseline)",
                      accuracy["ours_abs_error"], "tokens", accuracy["naive_abs_error"], 0),
    ])  # fmt: skip
    image = image_bench.section(image_bench.measure_image())
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = f"""# Benchmarks

Produced by `make bench` (`python -m benchmarks.run`) on {now}.
Machine: {machine()}.
Prometheus: Debian 2.42 (and 3.16 where noted) on loopback, data backfilled with promtool.

{results.summary()}

## Collection of one hour at {scale["series"]:,} active series

Exact collection of one closed hour by the collector (steady state: the source is bootstrapped
first, untimed) against the naive `sum by (user, tier, model) (increase(m[1h]))` query that
today's dashboards run, on the same Prometheus, alternating in one process, median of 3 rounds.
5-minute scrape interval, 2 replicas per user, one series in 500 reset in the hour. Measured on
Debian's Prometheus 2.42 (per-series path) and on Prometheus 3.16 built by `make tools`
(anchored path).

| Prometheus | exact collector | naive `increase()` query | ratio | collector peak RSS (VmHWM) |
|---|---|---|---|---|
| 2.42 (per-series path) | {_row(scale)} |
| 3.16 (anchored path) | {_row(scale3)} |

On 2.x the collector asks for two things per bucket (last value of every series; series with a
reset since the previous bucket began), concurrently, fetches raw samples only for flagged
series, accounts exactly against per-series state, and writes usage rows in one transaction:
the last-value query alone costs about as much inside Prometheus as the whole naive query, and
decoding 100k series in Python adds ~0.5 s. On 3.7+ Prometheus sums exact per-series increases
itself (`increase(m[1h] anchored)`, no extrapolation, anchored at each series' last sample
before the hour: the cost of the naive query), and a second query finds the few series with no
sample in the 5 minutes before the hour (new ones), recounted exactly from raw samples. That second
query scans the hour once more, which is the floor of this design: two scans of the window
against one. Targets (scale issue): 2.5x the naive query on 3.16, peak RSS <= 300 MiB; the
earlier 1.5x was withdrawn (see "Known limits" in docs/development.md).

{catchup_bench.section(catchup)}

{flags_bench.section(flags)}

## Accuracy on simulated traffic

24 hours, 200 users, 3 tiers, 5 models, 2 Limitador replicas, 1-minute scrapes, two Limitador
restarts and a 55-minute scrape gap. Error is the sum over (user, tier, model, hour) of the
absolute difference from the simulator's observable ground truth.

| method | total tokens | absolute error (tokens) |
|---|---|---|
| ground truth (observable) | {accuracy["truth_tokens"]:,} | 0 |
| exact collector | {accuracy["ours_total"]:,} | **{accuracy["ours_abs_error"]:,}** |
| naive `increase()` per hour | {accuracy["naive_total"]:,} | {accuracy["naive_abs_error"]:,} |

## The operator at {operator["reports"]:,} reports

{operator["reports"]:,} UsageReports over {operator["sources"]} distinct sources (daily
schedules, 26 hours of history for 100 users), created at once against a running operator
(`chargeback run` as a process, SQLite ledger, 30 s refreshes), real kube-apiserver and
Prometheus. Then, with the data unchanged, the reports written to in {operator_bench.STEADY_S} s
are counted (a refresh that finds the same numbers writes no status).

| measure | value |
|---|---|
| reports Ready | {operator["ready"]} of {operator["reports"]} |
| time from creation to all Ready | {operator["seconds"]:.1f} s |
| operator peak RSS (VmHWM) | {operator["operator_peak_rss_mib"]:.0f} MiB |
| largest status of those reports | {operator["largest_status_bytes"]:,} bytes |
| status writes per report per hour at rest | {operator["steady_writes_per_report_hour"]:.2f} |
| API requests per report per hour at rest | {operator["steady_requests_per_report_hour"]:.2f} |
| status at 10,000 users, 300 teams, 80 models, 120 final periods | {status_bytes:,} bytes |

API requests in the {operator_bench.STEADY_S} s at rest, by verb and resource (the 8 most):
{_kinds(operator["steady_requests_by_kind"])}.

{forecast}

{report_bench.section(reports)}

{image}
## Reproduce

```sh
make bench                      # BENCH_SERIES=20000 make bench for a quicker run
```
"""
    (ROOT / "docs" / "benchmarks.md").write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
