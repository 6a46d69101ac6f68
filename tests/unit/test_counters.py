"""Counter accounting: the fast path equals the brute-force reference on random histories."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from chargeback.domain.counters import (
    Sample,
    State,
    account_first_data,
    account_raw,
    account_window,
    increase,
    reference_usage,
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
    """The collector's path, with Prometheus emulated: last value per window, resets flagged
    from the previous window's start, raw samples only where account_window asks for them."""
    states: dict[str, State] = {} if previous is None else {"s": (previous, -999)}
    usage = []
    for index, (start, end) in enumerate(itertools.pairwise(edges)):
        since = edges[index - 1] if index else start - 10**12
        window = [s for s in samples if start < s.t_ms <= end]
        if not window:
            usage.append(0)
            continue
        extended = [s.value for s in samples if since < s.t_ms <= end]
        flagged = {"s"} if any(b < a for a, b in itertools.pairwise(extended)) else set()
        resolved, needs_raw = account_window({"s": window[-1].value}, flagged, states, start)
        if needs_raw:
            resolved.update(account_raw({"s": tuple(window)}, states))
        used, value = resolved["s"]
        usage.append(used)
        states["s"] = (value, end)
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


def test_account_window_sends_only_doubtful_series_to_raw() -> None:
    states: dict[str, State] = {"steady": (100, 60), "quiet": (50, 0), "dropped": (90, 60)}
    last = {"steady": 130, "quiet": 70, "dropped": 20, "new": 7, "flagged": 5}
    resolved, needs_raw = account_window(last, {"flagged"}, states, window_start=60)
    assert resolved == {"steady": (30, 130), "new": (7, 7)}
    # Last seen before the previous window, a drop the flags missed, and a flagged reset.
    assert needs_raw == {"quiet", "dropped", "flagged"}
    raw = {"quiet": (Sample(61, 40), Sample(90, 70)), "dropped": (Sample(70, 20),),
           "flagged": (Sample(61, 3), Sample(70, 1), Sample(80, 5))}  # fmt: skip
    assert account_raw(raw, states) == {"quiet": (70, 70), "dropped": (20, 20), "flagged": (8, 5)}
