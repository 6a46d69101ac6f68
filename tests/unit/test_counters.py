"""Counter accounting: the fast path equals the brute-force reference on random histories."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeback.domain.counters import (
    AccountingError,
    Sample,
    WindowSummary,
    account_first_data,
    advance,
    increase,
    reference_usage,
    summarise,
)


@st.composite
def histories(draw: st.DrawFn) -> list[Sample]:
    """A counter's samples: increments, resets to small values, gaps, over random times."""
    count = draw(st.integers(0, 40))
    t = draw(st.integers(0, 10_000))
    value = draw(st.integers(0, 1_000))
    samples = []
    for _ in range(count):
        t += draw(st.sampled_from([1, 15_000, 30_000, 60_000, 3_600_000]))
        if draw(st.integers(0, 9)) == 0:
            value = draw(st.integers(0, 50))  # reset: the counter restarted
        else:
            value += draw(st.integers(0, 500))
        samples.append(Sample(t, value))
    return samples


@st.composite
def tilings(draw: st.DrawFn, samples: list[Sample]) -> list[int]:
    """Bucket edges covering the samples, cut at random points (including on sample times)."""
    last = samples[-1].t_ms if samples else 0
    points = draw(st.lists(st.integers(-1, last + 1), max_size=12))
    points += draw(st.lists(st.sampled_from([s.t_ms for s in samples] or [0]), max_size=4))
    return sorted({-1, last + 1, *points})


def fast_usage(samples: list[Sample], edges: list[int], previous: int | None) -> list[int]:
    """The collector's path: per window only the summary, plus raw samples when it has resets."""
    usage = []
    state = previous
    for start, end in itertools.pairwise(edges):
        window = summarise([s for s in samples if start < s.t_ms <= end])
        if window is None:
            usage.append(0)
            continue
        used, state = advance(state, window)
        usage.append(used)
    return usage


@given(st.data())
def test_fast_path_equals_reference(data: st.DataObject) -> None:
    samples = data.draw(histories())
    edges = data.draw(tilings(samples))
    previous = data.draw(st.none() | st.integers(0, 2_000))
    assert fast_usage(samples, edges, previous) == reference_usage(samples, edges, previous)


@given(st.data())
def test_any_tiling_sums_to_total_observed_usage(data: st.DataObject) -> None:
    samples = data.draw(histories())
    edges = data.draw(tilings(samples))
    total = sum(increase(p.value if p else None, s.value)
                for p, s in zip([None, *samples], samples, strict=False))  # fmt: skip
    assert sum(fast_usage(samples, edges, None)) == total
    assert sum(reference_usage(samples, [-1, samples[-1].t_ms if samples else 0], None)) == total


def test_first_data_treats_early_series_as_baselines() -> None:
    raw = {
        "early": (Sample(1_000, 500), Sample(61_000, 530)),
        "settling": (Sample(200_000, 40), Sample(260_000, 45)),
        "new": (Sample(900_000, 12), Sample(960_000, 3)),
    }
    per_series, first_ms = account_first_data(raw, settle_ms=300_000)
    assert first_ms == 1_000
    assert per_series == {"early": (30, 530), "settling": (5, 45), "new": (15, 3)}


def test_reset_at_window_edge_counts_new_value_from_zero() -> None:
    # State 100 before the window; the window starts at 5 (a restart) and grows to 9.
    assert advance(100, WindowSummary(last=9, minimum=5, resets=0)) == (9, 9)
    assert advance(100, WindowSummary(last=130, minimum=110, resets=0)) == (30, 130)
    assert advance(None, WindowSummary(last=7, minimum=3, resets=0)) == (7, 7)


def test_resets_without_raw_samples_are_refused() -> None:
    with pytest.raises(AccountingError, match="raw samples"):
        advance(1, WindowSummary(last=1, minimum=0, resets=1))
