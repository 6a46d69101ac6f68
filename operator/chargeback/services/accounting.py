"""Counter accounting over a window: two implementations of one small protocol.

:class:`ClassicAccounting` asks Prometheus for the last value of every series in the window and
for the few series with a reset, then accounts exactly against each series' previous value (the
collector keeps that state). :class:`AnchoredAccounting` lets Prometheus 3.7+ do it with an
anchored ``increase()`` summed by the usage dimensions, correcting only the series it cannot
anchor (new, or back after a silence); it keeps no per-series state. Both split a window that is
too large for Prometheus in halves.

Catching up on closed history, both answer many buckets from one pair of range queries
(:meth:`Accounting.account_buckets`, the same PromQL evaluated at every bucket end): exact as
bucket by bucket, with each series' labels sent once per range instead of once per bucket.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from chargeback.adapters.ledger import SourceRecord
from chargeback.adapters.prometheus import PrometheusClient, PrometheusQueryError, QueryTooLarge
from chargeback.api.source import SourceSpec
from chargeback.domain import promql
from chargeback.domain.counters import Sample, State, account_raw, account_window, usage_of_samples
from chargeback.domain.selectors import Matcher, regex_escape, series_selector
from chargeback.domain.series import SeriesKey, series_key

log = logging.getLogger(__name__)

MIN_SPLIT_MS = 60_000
RAW_BATCH_USERS = 200
ANCHOR_CHECK_MS = 300_000
"""Prometheus' default lookback delta: series without a sample this close before a window are
checked one by one in anchored mode."""

Usage = dict[SeriesKey, tuple[int, int]]
"""Usage and new value per series (classic) or usage per dimensions with value 0 (anchored)."""

RangeQueries = tuple[list[str], int | None]
"""Range queries evaluated at every bucket end, and the lookback delta to send with them."""

Answers = list[dict[int, dict[SeriesKey, int]]]
"""Per range query, its vector at each bucket end."""


@dataclass(frozen=True)
class Target:
    """One source being collected: its spec, its ledger record and its parsed selector."""

    source: SourceSpec
    record: SourceRecord
    matchers: tuple[Matcher, ...]

    @property
    def selector(self) -> str:
        """The series selector of the source."""
        return series_selector(self.record.metric, self.matchers)

    def selector_with(self, extra: Matcher) -> str:
        """The series selector narrowed by one more matcher."""
        return series_selector(self.record.metric, (*self.matchers, extra))

    @property
    def dimensions(self) -> list[str]:
        """The labels usage is kept by."""
        labels = self.source.labels
        kept = [labels.user, labels.tier, labels.model, *self.source.extra_labels]
        return kept + ([self.source.token_type_label] if self.source.token_type_label else [])


class Accounting(Protocol):
    """How usage over a window is computed."""

    keeps_state: bool
    """Whether the collector must keep each series' last value between windows."""

    def account(self, target: Target, a: int, b: int, states: dict[SeriesKey, State]) -> Usage:
        """Usage over (a, b]."""
        ...

    def range_queries(self, target: Target) -> RangeQueries:
        """The range queries whose answers :meth:`account_buckets` accounts."""
        ...

    def account_buckets(
        self, target: Target, a: int, states: dict[SeriesKey, State], answers: Answers
    ) -> Iterator[Usage]:
        """Usage of each bucket after ``a`` the answers cover, in turn, as :meth:`account` gives it.

        Against ``states``, which the caller brings up to each bucket's start in between.
        """
        ...


class _Windows:
    """What both implementations share: windows, raw samples, batches of users, splitting."""

    keeps_state = True

    def __init__(self, prometheus: PrometheusClient, bucket_ms: int) -> None:
        self.prometheus = prometheus
        self.bucket_ms = bucket_ms

    def window(self, selector: str, a: int, b: int) -> str:
        """``selector`` over exactly (a, b] on this Prometheus."""
        return promql.window(selector, a, b, closed=self.prometheus.closed_ranges())

    def account(self, target: Target, a: int, b: int, states: dict[SeriesKey, State]) -> Usage:
        """Usage over (a, b], splitting the window in halves while it is too large."""
        try:
            return self.account_window(target, a, b, states)
        except QueryTooLarge:
            if b - a <= MIN_SPLIT_MS:
                raise
        middle = a + (b - a) // 2
        log.info("Split window %d-%d: query too large", a, b)
        first = self.account(target, a, middle, states)
        later = {**states, **{k: (s, middle) for k, (_, s) in first.items()}}
        second = self.account(target, middle, b, later if self.keeps_state else states)
        merged = dict(first)
        for key, (used, state) in second.items():
            merged[key] = (merged.get(key, (0, 0))[0] + used, state)
        return merged

    def account_window(
        self, target: Target, a: int, b: int, states: dict[SeriesKey, State]
    ) -> Usage:
        """Usage over (a, b] in one go (may raise QueryTooLarge)."""
        raise NotImplementedError

    def span(self, selector: str, span_ms: int) -> str:
        """``selector`` over exactly the ``span_ms`` up to each evaluation time (range queries)."""
        return promql.range_of(selector, span_ms - (1 if self.prometheus.closed_ranges() else 0))

    def user_batches(
        self, target: Target, keys: set[SeriesKey]
    ) -> Iterator[tuple[str, set[SeriesKey]]]:
        """Selectors for the given series in batches of users, with the series each wants."""
        user_label = target.source.labels.user
        by_user: dict[str, list[SeriesKey]] = {}
        for key in keys:
            by_user.setdefault(dict(key).get(user_label, ""), []).append(key)
        users = sorted(by_user)
        for start in range(0, len(users), RAW_BATCH_USERS):
            batch = users[start : start + RAW_BATCH_USERS]
            if len(batch) == 1:
                matcher = Matcher(user_label, "=", batch[0])
            else:
                matcher = Matcher(user_label, "=~", "|".join(regex_escape(u) for u in batch))
            yield target.selector_with(matcher), {k for u in batch for k in by_user[u]}

    def raw(
        self, target: Target, a: int, b: int, keys: set[SeriesKey]
    ) -> dict[SeriesKey, tuple[Sample, ...]]:
        """Raw samples in (a, b] of the given series, fetched in batches of users."""
        raw: dict[SeriesKey, tuple[Sample, ...]] = {}
        for query, wanted in self.user_batches(target, keys):
            fetched = self.prometheus.samples(self.window(query, a, b), b)
            raw.update({k: v for k, v in fetched.items() if k in wanted})
        missing = keys - raw.keys()
        if missing:
            raise PrometheusQueryError(f"raw samples missing for {len(missing)} series in {a}-{b}")
        return raw


class ClassicAccounting(_Windows):
    """Exact accounting against per-series state kept by the collector (any Prometheus)."""

    keeps_state = True

    def account_window(
        self, target: Target, a: int, b: int, states: dict[SeriesKey, State]
    ) -> Usage:
        """Last values and reset flags; raw samples only for the series that need them."""
        selector = target.selector
        since_previous = self.window(selector, a - self.bucket_ms, b)
        last, flagged = self.prometheus.vectors(
            [promql.last_value(self.window(selector, a, b)), promql.resets(since_previous)], b
        )
        if not last:
            return {}
        return self._resolve(target, a, b, last=last, flagged=flagged, states=states)

    def range_queries(self, target: Target) -> RangeQueries:
        """Last values and reset flags (since the previous bucket began) at every bucket end."""
        selector, bucket = target.selector, self.bucket_ms
        return [
            promql.last_value(self.span(selector, bucket)),
            promql.resets(self.span(selector, 2 * bucket)),
        ], None

    def account_buckets(
        self, target: Target, a: int, states: dict[SeriesKey, State], answers: Answers
    ) -> Iterator[Usage]:
        """Each bucket accounted as :meth:`account_window` does, from the range answers."""
        lasts, flags = answers
        for lo in range(a, a + len(lasts) * self.bucket_ms, self.bucket_ms):
            hi = lo + self.bucket_ms
            last, flagged = lasts.pop(hi), flags.pop(hi)
            yield (
                self._resolve(target, lo, hi, last=last, flagged=flagged, states=states)
                if last
                else {}
            )

    def _resolve(
        self,
        target: Target,
        a: int,
        b: int,
        *,
        last: dict[SeriesKey, int],
        flagged: dict[SeriesKey, int],
        states: dict[SeriesKey, State],
    ) -> Usage:
        """Exact usage over (a, b] from last values, raw samples only where they are needed."""
        resolved, needs_raw = account_window(last, set(flagged), states, a)
        if needs_raw:
            resolved.update(account_raw(self.raw(target, a, b, needs_raw), states))
        return resolved


class AnchoredAccounting(_Windows):
    """Prometheus' anchored ``increase()`` summed by dimensions; no per-series state."""

    keeps_state = False

    def __init__(
        self, prometheus: PrometheusClient, bucket_ms: int, lookback_ms: int, bootstrap_ms: int
    ) -> None:
        super().__init__(prometheus, bucket_ms)
        self.lookback_ms = lookback_ms
        self.bootstrap_ms = bootstrap_ms

    def account_window(
        self, target: Target, a: int, b: int, states: dict[SeriesKey, State]
    ) -> Usage:
        """Usage per dimensions over (a, b] from Prometheus' anchored ``increase()``.

        Anchored, the increase of a series starts from its last sample before ``a`` (within the
        lookback delta): exactly our accounting, summed server-side at the cost of one naive
        query. A series without such a sample (new, or back after a silence) is counted from
        its first sample in the window instead. A second query returns the series without a
        sample in the last ``ANCHOR_CHECK_MS`` before ``a`` (no more than any lookback delta, so
        every series anchored counts short is among them, whatever lookback the server applies);
        for each, what Prometheus counted is replaced by exact accounting from raw samples and
        its last earlier value (from Prometheus, else the ledger; none for a new series).
        """
        names = target.dimensions
        window = self.window(target.selector, a, b)
        check = min(self.lookback_ms, ANCHOR_CHECK_MS)
        recent = promql.last_value(promql.lookback(target.selector, check, a))
        by_dims, doubtful = self.prometheus.vectors(
            [promql.anchored_increase(window, names),
             promql.unless(promql.last_value(window), recent)],
            b,
            lookback_ms=self.lookback_ms,
        )  # fmt: skip
        usage: dict[SeriesKey, int] = dict(by_dims)
        if doubtful:
            self._recount(target, a, b, set(doubtful), states=states, usage=usage)
        return {key: (used, 0) for key, used in usage.items()}

    def range_queries(self, target: Target) -> RangeQueries:
        """The two queries of :meth:`account_window`, for every bucket end.

        The window before each bucket is the same lookback shifted by one bucket (``offset``).
        """
        window = self.span(target.selector, self.bucket_ms)
        check = min(self.lookback_ms, ANCHOR_CHECK_MS)
        recent = promql.last_value(promql.shifted(target.selector, check, self.bucket_ms))
        return [
            promql.anchored_increase(window, target.dimensions),
            promql.unless(promql.last_value(window), recent),
        ], self.lookback_ms

    def account_buckets(
        self, target: Target, a: int, states: dict[SeriesKey, State], answers: Answers
    ) -> Iterator[Usage]:
        """Prometheus' sums per bucket, with the series it cannot anchor recounted exactly."""
        by_dims, doubtful = answers
        for lo in range(a, a + len(by_dims) * self.bucket_ms, self.bucket_ms):
            hi = lo + self.bucket_ms
            usage = by_dims.pop(hi)
            keys = set(doubtful.pop(hi))
            if keys:
                self._recount(target, lo, hi, keys, states=states, usage=usage)
            yield {key: (used, 0) for key, used in usage.items()}

    def _recount(
        self,
        target: Target,
        a: int,
        b: int,
        keys: set[SeriesKey],
        *,
        states: dict[SeriesKey, State],
        usage: dict[SeriesKey, int],
    ) -> None:
        """Replace what anchored ``increase()`` counted for ``keys`` by exact accounting."""
        names = target.dimensions
        raw = self.raw(target, a, b, keys)
        baselines = self._baselines(target, keys, a, states)
        counted = self._counted(target, a, b, keys)
        for key, samples in raw.items():
            exact, _ = usage_of_samples(baselines.get(key), samples)
            labels = dict(key)
            group = series_key((n, labels[n]) for n in names if labels.get(n))
            usage[group] = usage.get(group, 0) + exact - counted.get(key, 0)

    def _counted(
        self, target: Target, a: int, b: int, keys: set[SeriesKey]
    ) -> dict[SeriesKey, int]:
        """What anchored ``increase()`` counted for each of the given series."""
        counted: dict[SeriesKey, int] = {}
        for selector, wanted in self.user_batches(target, keys):
            query = promql.anchored_increase(self.window(selector, a, b))
            found = self.prometheus.vector(query, b, lookback_ms=self.lookback_ms)
            counted.update({k: v for k, v in found.items() if k in wanted})
        return counted

    def _baselines(
        self, target: Target, keys: set[SeriesKey], a: int, states: dict[SeriesKey, State]
    ) -> dict[SeriesKey, int]:
        """The last value at or before ``a`` of each series; absent for a new series.

        From Prometheus, looking back as far as the bootstrap does; else the ledger's state.
        """
        baselines = {k: states[k][0] for k in keys if k in states}
        for selector, wanted in self.user_batches(target, keys):
            query = promql.last_value(promql.lookback(selector, self.bootstrap_ms, a))
            found = self.prometheus.vector(query, a)
            baselines.update({k: v for k, v in found.items() if k in wanted})
        return baselines
