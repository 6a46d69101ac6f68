"""Exact collection against a real Prometheus holding simulated traffic with ground truth."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from chargeback.adapters.ledger import Ledger
from chargeback.adapters.prometheus import PrometheusClient, PrometheusSettings
from chargeback.api.source import SourceSpec
from chargeback.services.collect import CollectError, Collector
from chargeback.testing.prometheus import PrometheusServer
from chargeback.testing.simulator import HOUR_MS
from tests.integration.conftest import END, T0, Traffic, differences, ledger_totals

SOURCE = SourceSpec()


def test_ledger_equals_observable_ground_truth(any_traffic: Traffic, ledger_dsn: str) -> None:
    traffic = any_traffic
    ledger = Ledger(ledger_dsn)
    result = Collector(traffic.client(), ledger).collect(SOURCE, T0, END)
    assert result.steps == 72
    assert result.metric == "authorized_hits"
    truth = traffic.sim.truth(T0, END)
    got = ledger_totals(ledger, result.source_id)
    assert differences(got, truth) == {}
    assert sum(got.values()) == sum(truth.values())
    # The scenario really exercised what it claims to: users, tiers, models, lost tokens.
    assert len({k[0] for k in truth}) >= 200
    assert {k[1] for k in truth} == {"free", "premium", "enterprise"}
    assert len({k[2] for k in truth}) >= 5
    assert traffic.sim.lost_tokens > 0
    assert ledger.gaps(result.source_id) == []
    ledger.close()


def test_collecting_in_pieces_equals_one_pass(any_traffic: Traffic, tmp_path: Path) -> None:
    traffic = any_traffic
    ledger = Ledger(f"sqlite:///{tmp_path / 'pieces.db'}")
    collector = Collector(traffic.client(), ledger)
    cuts = sorted(random.Random(3).sample(range(T0 + HOUR_MS, END, HOUR_MS), 6))
    for cut in [*cuts, END, END]:  # the repeated END must change nothing
        result = collector.collect(SOURCE, T0, cut)
    assert differences(ledger_totals(ledger, result.source_id), traffic.sim.truth(T0, END)) == {}


def test_collection_starting_mid_history_uses_baselines(
    any_traffic: Traffic, tmp_path: Path
) -> None:
    traffic = any_traffic
    start = T0 + 10 * HOUR_MS
    ledger = Ledger(f"sqlite:///{tmp_path / 'mid.db'}")
    result = Collector(traffic.client(), ledger).collect(SOURCE, start, END)
    assert result.steps == 62
    truth = traffic.sim.truth(start, END)
    assert differences(ledger_totals(ledger, result.source_id), truth) == {}


def test_prometheus_3_is_collected_with_anchored_ranges(
    traffic: Traffic, traffic3: Traffic
) -> None:
    # Which path the tests above ran: per-series on Debian's 2.42, anchored on 3.x.
    assert traffic.client().anchored_ranges() is False
    assert traffic3.client().anchored_ranges() is True


def test_range_edges_are_measured_never_read_from_the_version(
    traffic: Traffic, traffic3: Traffic
) -> None:
    # Debian's 2.42 includes a range's left edge, 3.16 does not; the probe needs no data.
    two, three = traffic.client(), traffic3.client()
    assert (two.closed_ranges(), three.closed_ranges()) == (True, False)
    assert two.semantics().endswith("range edges closed, no anchored ranges (probed)")
    assert three.semantics().endswith("range edges left-open, anchored ranges (probed)")
    # Probed once per build: the same build keeps the answer, a changed one is probed again.
    build = three.check_build()
    assert build.startswith("3.")
    assert three.semantics().startswith(f"build {build}:")
    two.check_build()
    three._build, three._closed_ranges = "2.42.0", True  # what an older build had measured
    assert three.check_build() == build
    assert three.closed_ranges() is False


@pytest.mark.parametrize("hours", [1, 2])
def test_the_open_bucket_computed_live_equals_ground_truth(
    any_traffic: Traffic, tmp_path: Path, hours: int
) -> None:
    traffic = any_traffic
    ledger = Ledger(f"sqlite:///{tmp_path / 'peek.db'}")
    collector = Collector(traffic.client(), ledger)
    # Collected to just before the Limitador restart at 50h10m, and a new collector (no cache),
    # as after an operator restart: the live buckets include the reset.
    watermark = T0 + 50 * HOUR_MS
    collector.collect(SOURCE, T0, watermark)
    rows, through = Collector(traffic.client(), ledger).peek(SOURCE, watermark + hours * HOUR_MS)
    assert through == watermark + hours * HOUR_MS
    got: dict[tuple[str, str, str, int], int] = {}
    for row in rows:
        key = (row.user, row.tier, row.model, row.bucket_start_ms)
        got[key] = got.get(key, 0) + row.tokens
    want = traffic.sim.truth(watermark, watermark + hours * HOUR_MS)
    assert differences({k: v for k, v in got.items() if v}, want) == {}
    assert want
    # peek wrote nothing
    assert ledger.source(ledger.list_sources()[0].id).watermark_ms == watermark


def test_concurrent_collectors_never_double_count(traffic: Traffic, ledger_dsn: str) -> None:
    ledgers = [Ledger(ledger_dsn), Ledger(ledger_dsn)]
    errors: list[BaseException] = []

    def run(ledger: Ledger) -> None:
        try:
            Collector(traffic.client(), ledger).collect(SOURCE, T0, END)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert errors == []
    # Whoever stopped early, a final pass completes the history; nothing is counted twice.
    result = Collector(traffic.client(), ledgers[0]).collect(SOURCE, T0, END)
    assert (
        differences(ledger_totals(ledgers[0], result.source_id), traffic.sim.truth(T0, END)) == {}
    )


def test_retention_loss_is_a_recorded_gap(any_traffic: Traffic, tmp_path: Path) -> None:
    traffic = any_traffic
    program = "prometheus3" if traffic.client().anchored_ranges() else "prometheus"
    ledger = Ledger(f"sqlite:///{tmp_path / 'retention.db'}")
    full = Collector(traffic.client(), ledger)
    first = full.collect(SOURCE, T0, T0 + 24 * HOUR_MS)
    # Later Prometheus only holds data from hour 36 on (its retention dropped the rest).
    kept_from = T0 + 36 * HOUR_MS
    lines = [
        line
        for line in traffic.openmetrics.read_text().splitlines()
        if line.startswith("#") or float(line.rsplit(" ", 1)[1]) * 1000 >= kept_from
    ]
    short_history = "\n".join(lines) + "\n"
    with PrometheusServer(tmp_path / "short", openmetrics=short_history, program=program) as short:
        later = Collector(PrometheusClient(PrometheusSettings(short.url)), ledger)
        result = later.collect(SOURCE, T0, END)
    gaps = ledger.gaps(first.source_id)
    assert [(g.start_ms, g.end_ms) for g in gaps] == [(T0 + 24 * HOUR_MS, kept_from)]
    assert "retention" in gaps[0].reason
    assert result.watermark_ms == END
    got = ledger_totals(ledger, first.source_id)
    truth = traffic.sim.truth(T0, END)
    before = {k: v for k, v in truth.items() if k[3] < T0 + 24 * HOUR_MS}
    after = {k: v for k, v in truth.items() if k[3] >= kept_from}
    assert differences(got, {**before, **after}) == {}


def test_bad_metric_is_refused_and_nothing_written(traffic: Traffic, tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'bad.db'}")
    with pytest.raises(CollectError, match="metric no_such_metric has no series"):
        Collector(traffic.client(), ledger).collect(SourceSpec(metric="no_such_metric"), T0, END)
    assert ledger.list_sources() == []
