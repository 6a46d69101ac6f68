"""Counter accounting over a window: two implementations of one small protocol.

:class:`ClassicAccounting` asks Prometheus for the last value of every series in the window and
for the few series with a reset, then accounts exactly against each series' previous value (the
collector keeps that state). :class:`AnchoredAccounting` lets Prometheus 3.7+ do it with an
anchored ``increase()`` summed by the usage dimensions, correcting only the series it cannot
anchor (new, or back after a silence); it keeps no per-series state. Both split a window that is
too large for Prometheus in halves.
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
            keys = set(doubtful)
            raw = self.raw(target, a, b, keys)
            baselines = self._baselines(target, keys, a, states)
            counted = self._counted(target, a, b, keys)
            for key, samples in raw.items():
                exact, _ = usage_of_samples(baselines.get(key), samples)
                labels = dict(key)
                group = series_key((n, labels[n]) for n in names if labels.get(n))
                usage[group] = usage.get(group, 0) + exact - counted.get(key, 0)
        return {key: (used, 0) for key, used in usage.items()}

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
