"""Exact counter accounting: turn counter samples into usage per time bucket.

The usage of one counter series in a bucket (a, b] is the sum of its sample-to-sample increases
whose later sample lies in (a, b]. An increase is ``cur - prev``, or ``cur`` when the value dropped
(a reset: the counter restarted from zero). The first sample of a *new* series counts from zero
(Limitador creates a counter at its first hit); the first sample of a series that already existed
when observation began is only a baseline. Summed over consecutive buckets this equals the total
observed usage: nothing is double-counted at bucket edges and no reset that was scraped is lost.

Two implementations live here. :func:`reference_usage` is the brute-force definition over raw
samples. :func:`account_window` is the fast path used by the collector: per series it needs only
the last value in the window and whether any reset happened since the previous window began, both
computed inside Prometheus, plus the stored state; it asks for raw samples only for series with a
reset, or whose previous value lies further back. Property tests prove the two agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from chargeback.domain.series import SeriesKey


@dataclass(frozen=True, slots=True)
class Sample:
    """One counter sample: timestamp in milliseconds and integral value."""

    t_ms: int
    value: int


def increase(previous: int | None, current: int) -> int:
    """Usage between two consecutive samples; ``previous`` None means a new series (from zero)."""
    if previous is None or current < previous:
        return current
    return current - previous


def usage_of_samples(previous: int | None, samples: Iterable[Sample]) -> tuple[int, int | None]:
    """Sum the increases of ``samples`` after the state ``previous``; return (usage, new state)."""
    total = 0
    state = previous
    for sample in samples:
        total += increase(state, sample.value)
        state = sample.value
    return total, state


State = tuple[int, int]
"""A series' stored state: (last value, end of the window in which it was last seen)."""


def account_window(
    last: dict[SeriesKey, int],
    flagged: set[SeriesKey],
    states: dict[SeriesKey, State],
    window_start: int,
) -> tuple[dict[SeriesKey, tuple[int, int]], set[SeriesKey]]:
    """Fast-path usage per series for a window (a, b]; return (usage and new value, needs raw).

    ``last`` holds the last value in the window of every series with samples in it. ``flagged``
    holds the series with a reset anywhere from the start of the *previous* window to ``b``, so
    for a series seen in the previous window (state seen at ``a``) the range covers its state
    sample, the edge, and the window. Unflagged series seen at ``a`` grew monotonically from
    their state: usage is ``last - state``. New series (no state) count from zero. Everything
    else (flagged, or last seen before the previous window) needs raw samples.
    """
    resolved: dict[SeriesKey, tuple[int, int]] = {}
    needs_raw: set[SeriesKey] = set()
    for key, value in last.items():
        state = states.get(key)
        if key in flagged:
            needs_raw.add(key)
        elif state is None:
            resolved[key] = (value, value)
        elif state[1] == window_start and value >= state[0]:
            resolved[key] = (value - state[0], value)
        else:
            needs_raw.add(key)
    return resolved, needs_raw


def account_raw(
    raw: dict[SeriesKey, tuple[Sample, ...]], states: dict[SeriesKey, State]
) -> dict[SeriesKey, tuple[int, int]]:
    """Usage and new value per series from raw window samples and stored states."""
    resolved = {}
    for key, samples in raw.items():
        if not samples:
            continue
        state = states.get(key)
        used, _ = usage_of_samples(state[0] if state else None, samples)
        resolved[key] = (used, samples[-1].value)
    return resolved


def bucket_of(t_ms: int, edges: Sequence[int]) -> int | None:
    """Index i such that edges[i] < t_ms <= edges[i + 1], or None when outside the tiling."""
    low, high = 0, len(edges) - 1
    if not edges or t_ms <= edges[0] or t_ms > edges[-1]:
        return None
    while high - low > 1:
        mid = (low + high) // 2
        if t_ms <= edges[mid]:
            high = mid
        else:
            low = mid
    return low


def reference_usage(
    samples: Sequence[Sample], edges: Sequence[int], previous: int | None
) -> list[int]:
    """Brute force: usage per bucket (edges[i], edges[i + 1]] of one series, sample by sample.

    ``previous`` is the state before ``edges[0]``; samples at or before ``edges[0]`` are ignored
    (they are already reflected in that state) and so are samples after ``edges[-1]``.
    """
    usage = [0] * (len(edges) - 1)
    state = previous
    for sample in sorted(samples, key=lambda s: s.t_ms):
        index = bucket_of(sample.t_ms, edges)
        if index is None:
            continue
        usage[index] += increase(state, sample.value)
        state = sample.value
    return usage


def account_first_data(
    raw: dict[SeriesKey, tuple[Sample, ...]], settle_ms: int
) -> tuple[dict[SeriesKey, tuple[int, int]], int]:
    """Usage and state per series in the first window in which a source has any data.

    Series whose first sample lies within ``settle_ms`` of the earliest sample existed before we
    could see them: their first value is a baseline, not usage. Series that appear later are new
    and count from zero. Returns the per-series (usage, state) and the earliest sample time.
    """
    first_ms = min(samples[0].t_ms for samples in raw.values() if samples)
    per_series: dict[SeriesKey, tuple[int, int]] = {}
    for key, samples in raw.items():
        if not samples:
            continue
        pre_existing = samples[0].t_ms <= first_ms + settle_ms
        previous = samples[0].value if pre_existing else None
        used, _ = usage_of_samples(previous, samples[1:] if pre_existing else samples)
        per_series[key] = (used, samples[-1].value)
    return per_series, first_ms
