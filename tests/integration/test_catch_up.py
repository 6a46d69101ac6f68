"""Catch-up in range queries: many closed buckets per query, exact as bucket by bucket.

Run on Debian's Prometheus 2.42 (per-series path) and Prometheus 3 (anchored path) holding the
shared three days of traffic (restarts, a scrape gap, users coming and going).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargeback.adapters.ledger import Ledger
from chargeback.adapters.prometheus import PrometheusClient, PrometheusSettings
from chargeback.api.source import SourceSpec
from chargeback.services.collect import Collector, CollectorSettings
from chargeback.testing.prometheus import PrometheusServer
from chargeback.testing.simulator import HOUR_MS
from tests.integration.conftest import END, T0, Traffic, differences, ledger_totals

SOURCE = SourceSpec()


class CountingClient(PrometheusClient):
    """The real client, counting the range and instant queries it sends."""

    def __init__(self, url: str) -> None:
        super().__init__(PrometheusSettings(url))
        self.sent: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, kind: str) -> None:
        with self._lock:
            self.sent[kind] += 1

    def _range_body(self, *args: Any, **kwargs: Any) -> Any:
        self._count("range")
        return super()._range_body(*args, **kwargs)

    def vector(self, *args: Any, **kwargs: Any) -> Any:
        self._count("instant")
        return super().vector(*args, **kwargs)


def collected(
    client: PrometheusClient, path: Path, cuts: list[int], **tuning: int
) -> dict[tuple[str, str, str, int], int]:
    """Tokens per (user, tier, model, bucket) after collecting up to each cut in turn."""
    ledger = Ledger(f"sqlite:///{path}")
    collector = Collector(client, ledger, CollectorSettings(**tuning))
    for cut in cuts:
        result = collector.collect(SOURCE, T0, cut)
    totals = ledger_totals(ledger, result.source_id)
    ledger.close()
    return totals


def test_range_queries_equal_bucket_by_bucket_and_ground_truth(
    any_traffic: Traffic, tmp_path: Path
) -> None:
    truth = any_traffic.sim.truth(T0, END)
    per_bucket = CountingClient(any_traffic.prometheus.url)
    one_by_one = collected(per_bucket, tmp_path / "one.db", [END], catchup_buckets=1)
    ranged = CountingClient(any_traffic.prometheus.url)
    in_ranges = collected(ranged, tmp_path / "ranges.db", [END])
    assert differences(one_by_one, truth) == {}
    assert differences(in_ranges, truth) == {}
    assert in_ranges == one_by_one
    # 72 buckets: two range queries per chunk of 24 (the first anchored chunk is 2 buckets).
    assert per_bucket.sent["range"] == 0
    assert per_bucket.sent["instant"] >= 2 * 72
    assert 6 <= ranged.sent["range"] <= 10
    # Instant queries left: bootstrap and resume, and the raw recounts of series with a reset,
    # a restart or a silence behind them.
    assert ranged.sent["instant"] < per_bucket.sent["instant"] // 2


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    chunk=st.integers(2, 40),
    points=st.sampled_from([300, 3_000, 400_000]),
    cuts=st.lists(st.integers(1, 71), max_size=3, unique=True),
)
def test_any_chunking_and_any_cuts_are_exact(
    any_traffic: Traffic, chunk: int, points: int, cuts: list[int]
) -> None:
    # 300 values: a bucket per query (the traffic has ~300 series; half for the chunk sent
    # ahead); 3,000: a few buckets; 400,000: chunks of up to `chunk`.
    marks = [T0 + h * HOUR_MS for h in sorted(cuts)] + [END]
    with tempfile.TemporaryDirectory() as workdir:
        got = collected(
            any_traffic.client(),
            Path(workdir) / "ledger.db",
            marks,
            catchup_buckets=chunk,
            catchup_points=points,
        )
    assert differences(got, any_traffic.sim.truth(T0, END)) == {}


def test_a_chunk_too_large_for_prometheus_is_halved(
    traffic: Traffic, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The same blocks, served by a Prometheus that refuses queries holding many samples at once
    # (measured on this traffic: a range query over 6 buckets fits, over 24 it does not; the
    # reset flags select each range twice, increase() and delta(), hence twice the samples).
    workdir = tmp_path / "limited"
    blocks = shutil.ignore_patterns("lock", "wal", "chunks_head", "queries.active")
    shutil.copytree(traffic.prometheus.tsdb, workdir / "tsdb", ignore=blocks)
    caplog.set_level(logging.INFO, logger="chargeback.services.collect_plan")
    with PrometheusServer(workdir, extra_args=["--query.max-samples=12000"]) as limited:
        client = CountingClient(limited.url)
        got = collected(client, tmp_path / "halved.db", [END])
    assert differences(got, traffic.sim.truth(T0, END)) == {}
    halved = [r.args for r in caplog.records if "too large" in r.getMessage()]
    # Halved from 24 until accepted, and never tried larger again (at most 3 more halvings:
    # the buckets around the restarts and the scrape gap hold more samples).
    assert halved[:2] == [(12,), (6,)]
    assert len(halved) <= 5
    assert halved == sorted(halved, reverse=True)
    assert len(set(halved)) == len(halved)
