"""A report's series are replaced without a moment in which they are gone."""

from __future__ import annotations

from chargeback.adapters import metrics


def test_series_are_set_then_the_stale_ones_pruned() -> None:
    first = metrics.ReportSeries("ns", "r")
    first.set(metrics.report_tokens, ("ml", "free", "granite", "total"), 5)
    first.set(metrics.report_tokens, ("web", "free", "granite", "total"), 7)
    first.prune()
    again = metrics.ReportSeries("ns", "r")
    again.set(metrics.report_tokens, ("ml", "free", "granite", "total"), 6)
    # Before pruning the old series is still there: a scrape now sees numbers, never none.
    assert ("ns", "r", "web", "free", "granite", "total") in metrics.report_tokens._metrics
    again.prune()
    assert [k for k in metrics.report_tokens._metrics if k[:2] == ("ns", "r")] == [
        ("ns", "r", "ml", "free", "granite", "total")]  # fmt: skip
    assert (
        metrics.report_tokens.labels("ns", "r", "ml", "free", "granite", "total")._value.get() == 6
    )
    metrics.forget_report("ns", "r")
    assert not [k for k in metrics.report_tokens._metrics if k[:2] == ("ns", "r")]
