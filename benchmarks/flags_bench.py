"""Benchmark: what flagging resets without ``resets()`` costs (Thanos' ``resets()`` is always 0).

One steady hour at 100k series on Debian's Prometheus 2.42 (the per-series path, which asks for
reset flags every bucket), collected side by side and alternating in one process: with the flags
the collector asks today (``increase() != delta()``) and with the ``resets() > 0`` it asked
before. Run alone with ``python -m benchmarks.flags_bench``; ``make bench`` runs it too.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import results
from benchmarks.collect_bench import T0, collect_hour, write_series
from chargeback.domain import promql
from chargeback.testing.prometheus import PrometheusServer
from chargeback.testing.simulator import HOUR_MS

NAME = "reset flags through any querier vs resets(), one hour at 100k series, Prometheus 2.42"
MARKERS = ("<!-- flags:start -->", "<!-- flags:end -->")
TARGET = 1.3


def _resets_only(range_selector: str) -> str:
    """The flags before: exact on Prometheus, 0 for every series through a Thanos Querier."""
    return f"resets({range_selector}) > 0"


def run(series: int = 100_000, rounds: int = 3) -> dict[str, Any]:
    """Median seconds of each formulation over ``rounds`` alternating rounds."""
    current = promql.resets
    times: dict[str, list[float]] = {"current": [], "resets": []}
    with tempfile.TemporaryDirectory(prefix="bench-flags-") as scratch:
        workdir = Path(scratch)
        om = workdir / "series.om"
        write_series(om, series, hours=2)
        with PrometheusServer(workdir / "prom", openmetrics=om) as prom:
            start, end = T0 + HOUR_MS, T0 + 2 * HOUR_MS
            try:
                for round_ in range(rounds):
                    for name, flags in (("current", current), ("resets", _resets_only)):
                        promql.resets = flags
                        dsn = f"sqlite:///{workdir}/{name}{round_}.db"
                        times[name].append(collect_hour(prom.url, dsn, start, end))
            finally:
                promql.resets = current
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {"series": series, "rounds": rounds, **medians}


def section(measured: dict[str, Any]) -> str:
    """The docs/benchmarks.md section."""
    ratio = measured["current"] / measured["resets"]
    return f"""{MARKERS[0]}
## Reset flags that a Thanos Querier cannot break

A Thanos Querier applies counter resets to the samples before `resets()` sees them, so its
`resets()` is 0 for every series (thanos-io/thanos#3644) and a restart hidden by growth lost its
tokens. The per-series path (Prometheus 2.x, any querier without anchored ranges) now flags a
series for raw samples where `increase()` and `delta()` of the range disagree: one more range
selection per bucket. One steady hour at {measured["series"]:,} series on Prometheus 2.42,
both formulations alternating in one process, median of {measured["rounds"]} rounds.
Target: <= {TARGET}x.

| reset flags | one hour |
|---|---|
| `(increase(r) != bool delta(r)) == 1` (now) | {measured["current"]:.2f} s |
| `resets(r) > 0` (before; 0 through Thanos) | {measured["resets"]:.2f} s |
| ratio | **{ratio:.2f}x** |

Reproduce: `python -m benchmarks.flags_bench` (also part of `make bench`).
{MARKERS[1]}"""


def record(measured: dict[str, Any]) -> None:
    """The entry of benchmarks/results.json."""
    results.record([results.entry(NAME, measured["current"], "s", measured["resets"], TARGET)])


if __name__ == "__main__":
    figures = run()
    record(figures)
    sys.stdout.write(results.write_section(section(figures), MARKERS) + "\n")
