"""Forecasts: refusal on short history, flat and empty series, and backtest accuracy."""

from __future__ import annotations

import pytest
from benchmarks.forecast_bench import SCENARIO, backtest

from chargeback.domain.forecast import MIN_DAYS, InsufficientHistory, forecast


def test_short_history_is_refused_with_the_reason() -> None:
    with pytest.raises(InsufficientHistory, match=f"20 complete days.*needs {MIN_DAYS}"):
        forecast([100] * 20, 7)


def test_no_usage_forecasts_nothing() -> None:
    assert forecast([0] * 28, 7).tokens == 0


def test_a_steady_weekly_pattern_is_forecast_within_its_interval() -> None:
    week = [1000, 1100, 1050, 1000, 900, 300, 250]
    result = forecast(week * 4, 7)
    assert result.lower <= sum(week) <= result.upper
    assert abs(result.tokens - sum(week)) <= 0.02 * sum(week)


def test_backtest_on_simulated_growth_beats_last_week() -> None:
    # Four weeks of the benchmark's traffic, cutoffs at weeks 3 and 4: the same code path as
    # `make bench`, small enough for the suite.
    small = SCENARIO.__class__(**{**SCENARIO.__dict__, "hours": 5 * 7 * 24, "users": 60})
    result = backtest(small, first_cutoff_week=3)
    assert result["cases"] == 10
    assert result["ours_mape"] <= 10.0
    assert result["ours_mape"] < result["naive_mape"]
