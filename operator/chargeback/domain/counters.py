"""Exact counter accounting: turn counter samples into usage per time bucket.

The usage of one counter series in a bucket (a, b] is the sum of its sample-to-sample increases
whose later sample lies in (a, b]. An increase is ``cur - prev``, or ``cur`` when the value dropped
(a reset: the counter restarted from zero). The first sample of a *new* series counts from zero
(Limitador creates a counter at its first hit); the first sample of a series that already existed
when observation began is only a baseline. Summed over consecutive buckets this equals the total
observed usage: nothing is double-counted at bucket edges and no reset that was scraped is lost.

Two implementations live here. :func:`reference_usage` is the brute-force definition over raw
samples. :func:`advance` is the fast path used by the collector: it needs only three numbers per
series and window, all computed inside Prometheus (last value, minimum, number of resets), and falls
back to raw samples only for series whose window contains a reset. Property tests prove the two
agree.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sample:
    """One counter sample: timestamp in milliseconds and integral value."""

    t_ms: int
    value: int


@dataclass(frozen=True, slots=True)
class WindowSummary:
    """What Prometheus reports about one series over a window (a, b].

    ``last`` is the value of the last sample, ``minimum`` the smallest value and ``resets`` the
    number of drops between consecutive samples inside the window. When ``resets`` is non-zero the
    collector also supplies the window's raw ``samples``, since the summary alone cannot tell how
    much was counted before each reset.
    """

    last: int
    minimum: int
    resets: int
    samples: tuple[Sample, ...] | None = None


class AccountingError(ValueError):
    """The inputs cannot be accounted exactly (e.g. a reset without raw samples)."""


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


def advance(previous: int | None, window: WindowSummary) -> tuple[int, int]:
    """Usage of one series in a window given its state before the window; return (usage, state).

    ``previous`` is the last value seen before the window, or None for a series that counts from
    zero. Without resets inside the window the values are non-decreasing, so the minimum is the
    first value, and a first value below ``previous`` is a reset at the window's edge.
    """
    if window.resets:
        if window.samples is None:
            raise AccountingError("a window with resets needs its raw samples")
        used, state = usage_of_samples(previous, window.samples)
        if state is None:  # pragma: no cover - samples of a reset window are never empty
            raise AccountingError("a window with resets had no samples")
        return used, state
    first = window.minimum
    if previous is None or first < previous:
        return window.last, window.last
    return window.last - previous, window.last


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


def summarise(samples: Sequence[Sample]) -> WindowSummary | None:
    """The summary Prometheus would compute for samples of one window (used by tests and demos)."""
    if not samples:
        return None
    ordered = sorted(samples, key=lambda s: s.t_ms)
    values = [s.value for s in ordered]
    resets = sum(1 for before, after in itertools.pairwise(values) if after < before)
    return WindowSummary(
        last=values[-1],
        minimum=min(values),
        resets=resets,
        samples=tuple(ordered) if resets else None,
    )


def account_first_data(
    raw: dict[str, tuple[Sample, ...]], settle_ms: int
) -> tuple[dict[str, tuple[int, int]], int]:
    """Usage and state per series in the first window in which a source has any data.

    Series whose first sample lies within ``settle_ms`` of the earliest sample existed before we
    could see them: their first value is a baseline, not usage. Series that appear later are new
    and count from zero. Returns the per-series (usage, state) and the earliest sample time.
    """
    first_ms = min(samples[0].t_ms for samples in raw.values() if samples)
    per_series: dict[str, tuple[int, int]] = {}
    for key, samples in raw.items():
        if not samples:
            continue
        pre_existing = samples[0].t_ms <= first_ms + settle_ms
        previous = samples[0].value if pre_existing else None
        used, _ = usage_of_samples(previous, samples[1:] if pre_existing else samples)
        per_series[key] = (used, samples[-1].value)
    return per_series, first_ms
