"""Collection: advance a source's ledger from its watermark to now, one closed bucket per step.

Each step asks Prometheus for the last value of every series in the bucket and for the few series
with a reset since the previous bucket began (two selector evaluations, the same order of work as
one ``increase()`` query), fetches raw samples only for the series that need them, applies exact
counter accounting against the stored per-series state, and writes usage, state and the new
watermark in one transaction. A step that fails writes nothing; re-running it is safe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from chargeback.adapters.ledger import Ledger, SourceRecord, Step, StepConflict
from chargeback.adapters.prometheus import PrometheusClient, PrometheusQueryError, QueryTooLarge
from chargeback.api.source import DEFAULT_METRICS, SourceSpec
from chargeback.domain import buckets
from chargeback.domain.buckets import HOUR_MS
from chargeback.domain.counters import (
    Sample,
    State,
    account_first_data,
    account_raw,
    account_window,
    usage_of_samples,
)
from chargeback.domain.selectors import Matcher, parse_selector, regex_escape, series_selector
from chargeback.domain.series import SeriesKey, aggregate, series_key
from chargeback.domain.usage import Gap, UsageRow

log = logging.getLogger(__name__)

MIN_SPLIT_MS = 60_000
RAW_BATCH_USERS = 200
ANCHOR_CHECK_MS = 300_000
"""Prometheus' default lookback delta: series without a sample this close before a window are
checked one by one in anchored mode."""
NO_DATA_GAP = (
    "Prometheus holds no data of this source for this range "
    "(before its data begins, or beyond its retention)"
)


class CollectError(RuntimeError):
    """Collection cannot proceed; the message says why. Nothing was written for the failed step."""


@dataclass(frozen=True)
class CollectorSettings:
    """Tuning of the collector (operator settings)."""

    bucket_ms: int = HOUR_MS
    """Bucket size; buckets are aligned to the epoch (UTC)."""
    settle_ms: int = 300_000
    """Series first seen this close to the start of the data are taken as pre-existing."""
    gap_tolerance_ms: int = 6 * HOUR_MS
    """A stretch without samples longer than this at the watermark is a recorded gap."""
    bootstrap_lookback_ms: int = 31 * 24 * HOUR_MS
    """How far before the first bucket to look for each series' baseline value."""
    anchor_lookback_ms: int = 900_000
    """Anchored mode: the lookback delta sent with the query, i.e. how far before a window
    Prometheus looks for each series' last sample (more than the scrape interval)."""
    anchored: bool | None = None
    """Use anchored ``increase()`` (Prometheus 3.7+); None: whenever Prometheus has it."""


@dataclass
class CollectResult:
    """What one collect call did."""

    source_id: str
    metric: str
    steps: int = 0
    tokens: int = 0
    watermark_ms: int = 0
    gaps: list[Gap] = field(default_factory=list)
    conflicted: bool = False
    """Another collector applied a step first; this one stopped without counting it."""


Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class _Target:
    """One source being collected: its spec, its ledger record and its parsed selector."""

    source: SourceSpec
    record: SourceRecord
    matchers: tuple[Matcher, ...]

    @property
    def selector(self) -> str:
        return series_selector(self.record.metric, self.matchers)

    def selector_with(self, extra: Matcher) -> str:
        return series_selector(self.record.metric, (*self.matchers, extra))


class Collector:
    """Collects sources from one Prometheus into one ledger."""

    def __init__(
        self,
        prometheus: PrometheusClient,
        ledger: Ledger,
        settings: CollectorSettings | None = None,
    ) -> None:
        self.prometheus = prometheus
        self.ledger = ledger
        self.settings = settings or CollectorSettings()
        # Per source: (watermark, states) after our last run. Valid while the ledger's watermark
        # still matches, i.e. no other process advanced the source meanwhile.
        self._cache: dict[str, tuple[int, dict[SeriesKey, State]]] = {}

    def collect(
        self,
        source: SourceSpec,
        start_ms: int,
        end_ms: int,
        progress: Progress | None = None,
    ) -> CollectResult:
        """Collect every closed bucket of ``source`` up to ``end_ms`` (floored to a bucket edge).

        ``start_ms`` only matters the first time a source is collected: it fixes where the
        ledger's history of the source begins.
        """
        bucket = self.settings.bucket_ms
        matchers = parse_selector(source.selector)
        record = self.ledger.source(source.source_id())
        if record is None:
            record = self._bootstrap(source, matchers, buckets.floor(start_ms, bucket))
        elif record.bucket_ms != bucket:
            raise CollectError(
                f"source {record.id} was collected with {record.bucket_ms} ms buckets, "
                f"not {bucket} ms"
            )
        target = _Target(source, record, matchers)
        result = CollectResult(record.id, record.metric, watermark_ms=record.watermark_ms)
        end = buckets.floor(end_ms, bucket)
        total_steps = max(0, (end - record.watermark_ms) // bucket)
        if total_steps == 0:
            return result
        cached = self._cache.pop(record.id, None)
        if cached is not None and cached[0] == record.watermark_ms and record.observing:
            states, observing = cached[1], True
        else:
            states, observing = self._resume(target, anchored=self._anchored())
        drop_states = record.observing and not observing
        a = record.watermark_ms
        while a < end:
            # Where Prometheus holds nothing yet, jump over the empty stretch in one step.
            b = self._empty_until(target, a, end) if not observing else a
            step_series: dict[SeriesKey, tuple[int, int]] = {}
            if b > a:
                step = Step(record.id, a, b, [], {}, drop_states, False, Gap(a, b, NO_DATA_GAP))
            else:
                b = a + bucket
                step, step_series = self._step(
                    target, a, b, states=states, observing=observing, drop_states=drop_states
                )
            try:
                self.ledger.apply_step(step)
            except StepConflict:
                log.warning("Stopped collecting source %s: another collector got ahead", record.id)
                result.conflicted = True
                break
            states.update({k: (value, b) for k, (_, value) in step_series.items()})
            observing, drop_states = step.observing, False
            result.steps += 1
            result.tokens += sum(row.tokens for row in step.usage)
            result.watermark_ms = b
            if step.gap:
                result.gaps.append(step.gap)
            if progress:
                progress((b - record.watermark_ms) // bucket, total_steps)
            a = b
        self._cache[record.id] = (result.watermark_ms, states)
        return result

    def peek(self, source: SourceSpec, now_ms: int) -> tuple[list[UsageRow], int]:
        """Usage from the watermark up to ``now_ms`` (the open bucket), computed, not stored.

        Returns the usage rows (keyed by the start of the bucket they fall in) and the time they
        run through. The ledger and the cache are left as they are.
        """
        record = self.ledger.source(source.source_id())
        if record is None or not record.observing or now_ms <= record.watermark_ms:
            return [], record.watermark_ms if record else now_ms
        target = _Target(source, record, parse_selector(source.selector))
        cached = self._cache.get(record.id)
        if cached is not None and cached[0] == record.watermark_ms:
            states = dict(cached[1])
        elif self._anchored():
            states = self.ledger.states(record.id)
        else:
            states, _ = self._resume(target)
        rows: list[UsageRow] = []
        a = record.watermark_ms
        while a < now_ms:
            b = min(buckets.floor(a, self.settings.bucket_ms) + self.settings.bucket_ms, now_ms)
            per_series = self._account(target, a, b, states)
            if not self._anchored():
                states.update({k: (value, b) for k, (_, value) in per_series.items()})
            totals = aggregate(((k, used) for k, (used, _) in per_series.items()), source)
            start = buckets.floor(a, self.settings.bucket_ms)
            rows += [UsageRow(start, *dims[:3], dims[3], tokens) for dims, tokens in totals.items()]
            a = b
        return rows, now_ms

    def resolve_metric(self, source: SourceSpec, start_ms: int, end_ms: int) -> str:
        """The metric to read: the configured one, or the first default name that has series."""
        candidates = [source.metric] if source.metric else list(DEFAULT_METRICS)
        found = self.prometheus.series_names(candidates, start_ms, end_ms)
        for name in candidates:
            if name in found:
                return name
        raise CollectError(
            f"metric {' or '.join(candidates)} has no series in Prometheus between "
            f"{buckets.from_ms(start_ms):%Y-%m-%d %H:%M} and "
            f"{buckets.from_ms(end_ms):%Y-%m-%d %H:%M} UTC; check source.metric"
        )

    def _bootstrap(
        self, source: SourceSpec, matchers: tuple[Matcher, ...], w0: int
    ) -> SourceRecord:
        lookback = self.settings.bootstrap_lookback_ms
        metric = self.resolve_metric(source, w0 - lookback, w0 + 366 * 24 * HOUR_MS)
        selector = series_selector(metric, matchers)
        # Series seen in the last bucket before w0 are "seen at w0" (fast path from the start);
        # older ones are kept with their value but take the raw path when they come back.
        previous_bucket = self._window(selector, w0 - self.settings.bucket_ms, w0)
        recent = self.prometheus.vector(f"last_over_time({previous_bucket})", w0)
        # Only the series missing from `recent` come back: one large response, not two.
        older = self.prometheus.vector(
            f"last_over_time({selector}[{lookback}ms] @ {_s(w0)}) "
            f"unless last_over_time({previous_bucket})",
            w0,
        )
        # Only series not active at w0 need persisting: the others are read back on resume.
        quiet: dict[SeriesKey, State] = {k: (v, 0) for k, v in older.items()}
        record = SourceRecord(
            id=source.source_id(),
            definition=source.model_dump(mode="json", by_alias=True),
            metric=metric,
            bucket_ms=self.settings.bucket_ms,
            start_ms=w0,
            watermark_ms=w0,
            observing=bool(recent or older),
        )
        count = len(recent) + len(older)
        log.info("Bootstrapped source %s (%s) with %d series", record.id, metric, count)
        stored = self.ledger.bootstrap(record, quiet)
        if stored.watermark_ms == w0:
            self._cache[record.id] = (w0, {**quiet, **{k: (v, w0) for k, v in recent.items()}})
        return stored

    def _resume(
        self, target: _Target, *, anchored: bool = False
    ) -> tuple[dict[SeriesKey, State], bool]:
        """Per-series state at the watermark, and whether Prometheus still shows the source.

        The ledger persists the state of series that left Prometheus' view; the state of series
        active at the watermark is their last value in the bucket before it, read back from
        Prometheus (one query per collection run instead of a write per series per step).
        Anchored mode reads nothing back (Prometheus anchors each series itself): one count.
        """
        record = target.record
        states = self.ledger.states(record.id)
        if not record.observing:
            return states, False
        w = record.watermark_ms
        if not anchored:
            previous = self._window(target.selector, w - self.settings.bucket_ms, w)
            active = self.prometheus.vector(f"last_over_time({previous})", w)
            states.update({k: (v, w) for k, v in active.items()})
            if active or not states:
                return states, True
        window = self.settings.gap_tolerance_ms
        query = f"count(last_over_time({target.selector}[{window}ms] @ {_s(w)}))"
        if self.prometheus.scalar_count(query, w) > 0:
            return states, True
        log.warning("Lost data of source %s at its watermark: recording a gap", record.id)
        return {}, False

    def _step(
        self,
        target: _Target,
        a: int,
        b: int,
        *,
        states: dict[SeriesKey, State],
        observing: bool,
        drop_states: bool,
    ) -> tuple[Step, dict[SeriesKey, tuple[int, int]]]:
        """The step to apply, and the usage and new value of every series seen in it."""
        gap = None
        if observing:
            per_series = self._account(target, a, b, states)
        else:
            per_series, first_ms = self._first_data(target, a, b)
            gap = Gap(a, b if first_ms is None else first_ms, NO_DATA_GAP)
            observing = first_ms is not None
        totals = aggregate(((k, used) for k, (used, _) in per_series.items()), target.source)
        rows = [
            UsageRow(a, user, tier, model, extra, tokens)
            for (user, tier, model, extra), tokens in sorted(totals.items())
        ]
        # Series seen in the previous window but not in this one left Prometheus' view: persist
        # their state, since it can no longer be read back at the watermark. (Anchored mode
        # keeps no per-series state: Prometheus holds each series' last value.)
        anchored = observing and self._anchored()
        left = (
            {}
            if anchored
            else {k: st for k, st in states.items() if st[1] == a and k not in per_series}
        )
        step = Step(
            source_id=target.record.id,
            from_ms=a,
            to_ms=b,
            usage=rows,
            states=left,
            drop_states=drop_states,
            observing=observing,
            gap=gap,
        )
        return step, {} if anchored else per_series

    def _account(
        self, target: _Target, a: int, b: int, states: dict[SeriesKey, State]
    ) -> dict[SeriesKey, tuple[int, int]]:
        """Usage and new value per series over (a, b], splitting the window if it is too large.

        In anchored mode the keys are the usage dimensions' labels, not series, and the new
        value is 0: Prometheus sums the series and no per-series state is kept.
        """
        selector = target.selector
        try:
            if self._anchored():
                return self._account_anchored(target, a, b, states)
            since_previous = self._window(selector, a - self.settings.bucket_ms, b)
            last, flagged = self.prometheus.vectors(
                [
                    f"last_over_time({self._window(selector, a, b)})",
                    f"resets({since_previous}) > 0",
                ],
                b,
            )
            if not last:
                return {}
        except QueryTooLarge:
            if b - a <= MIN_SPLIT_MS:
                raise
            middle = a + (b - a) // 2
            log.info("Split window %d-%d: query too large", a, b)
            first = self._account(target, a, middle, states)
            later_states = (
                states
                if self._anchored()
                else {**states, **{k: (s, middle) for k, (_, s) in first.items()}}
            )
            second = self._account(target, middle, b, later_states)
            merged = dict(first)
            for key, (used, state) in second.items():
                merged[key] = (merged.get(key, (0, 0))[0] + used, state)
            return merged
        resolved, needs_raw = account_window(last, set(flagged), states, a)
        if needs_raw:
            raw = self._raw(target, a, b, needs_raw)
            resolved.update(account_raw(raw, states))
        return resolved

    def _window(self, selector: str, a: int, b: int) -> str:
        """``selector[range] @ b`` covering exactly (a, b] on any Prometheus version."""
        # Prometheus 2.x range selectors include their left edge, 3.x do not.
        closed = self.prometheus.closed_ranges()
        return f"{selector}[{(b - a) - (1 if closed else 0)}ms] @ {_s(b)}"

    def _anchored(self) -> bool:
        if self.settings.anchored is None:
            return self.prometheus.anchored_ranges()
        return self.settings.anchored

    def _account_anchored(
        self, target: _Target, a: int, b: int, states: dict[SeriesKey, State]
    ) -> dict[SeriesKey, tuple[int, int]]:
        """Usage per dimensions over (a, b] from Prometheus' anchored ``increase()``.

        Anchored, the increase of a series starts from its last sample before ``a`` (within the
        lookback delta): exactly our accounting, summed server-side at the cost of one naive
        query. A series without such a sample (new, or back after a silence) is counted from
        its first sample in the window instead. A second query returns the series without a
        sample in the last ``CHECK_MS`` before ``a`` (no more than any lookback delta, so every
        series anchored counts short is among them, whatever lookback the server applies);
        for each, what Prometheus counted is replaced by exact accounting from raw samples and
        its last earlier value (from Prometheus, else the ledger; none for a new series).
        """
        source, lookback = target.source, self.settings.anchor_lookback_ms
        names = [source.labels.user, source.labels.tier, source.labels.model,
                 *source.extra_labels]  # fmt: skip
        window = self._window(target.selector, a, b)
        check = min(lookback, ANCHOR_CHECK_MS)
        by_dims, doubtful = self.prometheus.vectors(
            [
                f"sum by ({', '.join(names)}) (increase({window} anchored))",
                f"last_over_time({window}) "
                f"unless last_over_time({target.selector}[{check}ms] @ {_s(a)})",
            ],
            b,
            lookback_ms=lookback,
        )
        usage: dict[SeriesKey, int] = dict(by_dims)
        if doubtful:
            keys = set(doubtful)
            raw = self._raw(target, a, b, keys)
            baselines = self._baselines(target, keys, a, states)
            counted: dict[SeriesKey, int] = {}
            for selector, wanted in self._user_batches(target, keys):
                query = f"increase({self._window(selector, a, b)} anchored)"
                found = self.prometheus.vector(query, b, lookback_ms=lookback)
                counted.update({k: v for k, v in found.items() if k in wanted})
            for key, samples in raw.items():
                exact, _ = usage_of_samples(baselines.get(key), samples)
                labels = dict(key)
                group = series_key((n, labels[n]) for n in names if labels.get(n))
                usage[group] = usage.get(group, 0) + exact - counted.get(key, 0)
        return {key: (used, 0) for key, used in usage.items()}

    def _baselines(
        self, target: _Target, keys: set[SeriesKey], a: int, states: dict[SeriesKey, State]
    ) -> dict[SeriesKey, int]:
        """The last value at or before ``a`` of each series; absent for a new series.

        From Prometheus, looking back as far as the bootstrap does; else the ledger's state.
        """
        baselines = {k: states[k][0] for k in keys if k in states}
        lookback = self.settings.bootstrap_lookback_ms
        for selector, wanted in self._user_batches(target, keys):
            found = self.prometheus.vector(f"last_over_time({selector}[{lookback}ms] @ {_s(a)})", a)
            baselines.update({k: v for k, v in found.items() if k in wanted})
        return baselines

    def _user_batches(
        self, target: _Target, keys: set[SeriesKey]
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

    def _raw(
        self, target: _Target, a: int, b: int, keys: set[SeriesKey]
    ) -> dict[SeriesKey, tuple[Sample, ...]]:
        """Raw samples in (a, b] of the given series, fetched in batches of users."""
        raw: dict[SeriesKey, tuple[Sample, ...]] = {}
        for query, wanted in self._user_batches(target, keys):
            fetched = self.prometheus.samples(self._window(query, a, b), b)
            raw.update({k: v for k, v in fetched.items() if k in wanted})
        missing = keys - raw.keys()
        if missing:
            raise PrometheusQueryError(f"raw samples missing for {len(missing)} series in {a}-{b}")
        return raw

    def _empty_until(self, target: _Target, a: int, end: int) -> int:
        """The furthest bucket edge up to which Prometheus holds no data after ``a``.

        Doubling windows: one cheap count query per doubling, instead of one per empty bucket.
        """
        bucket = self.settings.bucket_ms
        reached, span = a, bucket
        while reached < end:
            probe = min(reached + span, end)
            window = self._window(target.selector, reached, probe)
            if self.prometheus.scalar_count(f"count(last_over_time({window}))", probe) > 0:
                break
            reached, span = probe, span * 2
        return reached

    def _first_data(
        self, target: _Target, a: int, b: int
    ) -> tuple[dict[SeriesKey, tuple[int, int]], int | None]:
        """Accounting for the first bucket with data: series present at its start are baselines."""
        window = self._window(target.selector, a, b)
        if self.prometheus.scalar_count(f"count(last_over_time({window}))", b) == 0:
            return {}, None
        raw = self.prometheus.samples(window, b)
        per_series, first_ms = account_first_data(raw, self.settings.settle_ms)
        return per_series, first_ms


def _s(t_ms: int) -> str:
    """Epoch seconds with millisecond precision, for PromQL's @ modifier."""
    return f"{t_ms / 1000:.3f}"
