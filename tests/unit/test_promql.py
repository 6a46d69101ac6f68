"""The collectors' PromQL, as the pure functions build it."""

from __future__ import annotations

from chargeback.domain import promql

H = 3_600_000


def test_windows_cover_exactly_the_bucket_on_both_prometheus_eras() -> None:
    assert promql.window('m{a="1"}', 0, H, closed=False) == 'm{a="1"}[3600000ms] @ 3600.000'
    assert promql.window('m{a="1"}', 0, H, closed=True) == 'm{a="1"}[3599999ms] @ 3600.000'
    assert promql.at(1_234) == "1.234"


def test_collection_queries() -> None:
    window = promql.window("m", H, 2 * H, closed=False)
    assert promql.last_value(window) == "last_over_time(m[3600000ms] @ 7200.000)"
    assert promql.present(window) == "count(last_over_time(m[3600000ms] @ 7200.000))"
    assert promql.resets(window) == (
        "(increase(m[3600000ms] @ 7200.000) != bool delta(m[3600000ms] @ 7200.000)) == 1"
    )
    assert (
        promql.unless(
            promql.last_value(window), promql.last_value(promql.lookback("m", 300_000, H))
        )
        == "last_over_time(m[3600000ms] @ 7200.000) unless last_over_time(m[300000ms] @ 3600.000)"
    )


def test_anchored_increase_sums_by_the_usage_dimensions() -> None:
    window = promql.window("m", 0, H, closed=False)
    assert promql.anchored_increase(window) == "increase(m[3600000ms] @ 3600.000 anchored)"
    assert (
        promql.anchored_increase(window, ["user", "tier"])
        == "sum by (user, tier) (increase(m[3600000ms] @ 3600.000 anchored))"
    )


def test_gauge_integrals_step_at_the_resolution() -> None:
    assert promql.integral("sum(x)", H - 1, 30_000) == "sum_over_time((sum(x))[3599999ms:30000ms])"


def test_aggregations() -> None:
    assert promql.sum_by(["model"], "x") == "sum by (model) (x)"
    assert promql.count_by(["model", "gpu"], "x") == "count by (model, gpu) (x)"
    assert promql.range_of("kube_node_labels", 3_599_999) == "kube_node_labels[3599999ms]"
