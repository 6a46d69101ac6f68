"""Collection: advance a source's ledger from its watermark to now, one closed bucket per step.

Each step asks Prometheus for three numbers per series over the bucket (last value, minimum,
number of resets), fetches raw samples only for series with a reset inside the bucket, applies
exact counter accounting against the stored per-series state, and writes usage, state and the new
watermark in one transaction. A step that fails writes nothing; re-running it is safe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from chargeback.adapters.ledger import Gap, Ledger, SourceRecord, Step, StepConflict, UsageRow
from chargeback.adapters.prometheus import PrometheusClient, PrometheusQueryError, QueryTooLarge
from chargeback.api.source import DEFAULT_METRICS, SourceSpec
from chargeback.domain import buckets
from chargeback.domain.counters import (
    Sample,
    WindowSummary,
    account_first_data,
    advance,
)
from chargeback.domain.selectors import Matcher, exact_selector, parse_selector, series_selector
from chargeback.domain.series import aggregate, series_labels

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
MIN_SPLIT_MS = 60_000
RAW_PER_SERIES_LIMIT = 32
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
        selector = series_selector(record.metric, matchers)
        result = CollectResult(record.id, record.metric, watermark_ms=record.watermark_ms)
        end = buckets.floor(end_ms, bucket)
        total_steps = max(0, (end - record.watermark_ms) // bucket)
        if total_steps == 0:
            return result
        states = self.ledger.states(record.id)
        observing = record.observing
        drop_states = False
        if observing and states and not self._has_data_near(selector, record.watermark_ms):
            log.warning("Lost data of source %s at its watermark: recording a gap", record.id)
            observing, drop_states, states = False, True, {}
        for a in range(record.watermark_ms, end, bucket):
            b = a + bucket
            step = self._step(
                source, record, selector, a, b,
                states=states, observing=observing, drop_states=drop_states,
            )  # fmt: skip
            try:
                self.ledger.apply_step(step)
            except StepConflict:
                log.warning("Stopped collecting source %s: another collector got ahead", record.id)
                result.conflicted = True
                break
            states.update(step.states)
            observing, drop_states = step.observing, False
            result.steps += 1
            result.tokens += sum(row.tokens for row in step.usage)
            result.watermark_ms = b
            if step.gap:
                result.gaps.append(step.gap)
            if progress:
                progress(result.steps, total_steps)
        return result

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
        states = self.prometheus.vector(f"last_over_time({selector}[{lookback}ms] @ {_s(w0)})", w0)
        record = SourceRecord(
            id=source.source_id(),
            definition=source.model_dump(mode="json", by_alias=True),
            metric=metric,
            bucket_ms=self.settings.bucket_ms,
            start_ms=w0,
            watermark_ms=w0,
            observing=bool(states),
        )
        log.info("Bootstrapped source %s (%s) with %d series", record.id, metric, len(states))
        return self.ledger.bootstrap(record, states)

    def _has_data_near(self, selector: str, t_ms: int) -> bool:
        window = self.settings.gap_tolerance_ms
        query = f"count(last_over_time({selector}[{window}ms] @ {_s(t_ms)}))"
        return self.prometheus.scalar_count(query, t_ms) > 0

    def _step(
        self,
        source: SourceSpec,
        record: SourceRecord,
        selector: str,
        a: int,
        b: int,
        *,
        states: dict[str, int],
        observing: bool,
        drop_states: bool,
    ) -> Step:
        gap = None
        if observing:
            per_series = self._account(record.metric, selector, a, b, states)
        else:
            per_series, first_ms = self._first_data(record.metric, selector, a, b)
            gap = Gap(a, b if first_ms is None else first_ms, NO_DATA_GAP)
            observing = first_ms is not None
        totals = aggregate(((k, used) for k, (used, _) in per_series.items()), source)
        rows = [
            UsageRow(a, user, tier, model, extra, tokens)
            for (user, tier, model, extra), tokens in sorted(totals.items())
        ]
        return Step(
            source_id=record.id,
            from_ms=a,
            to_ms=b,
            usage=rows,
            states={k: state for k, (_, state) in per_series.items()},
            drop_states=drop_states,
            observing=observing,
            gap=gap,
        )

    def _account(
        self, metric: str, selector: str, a: int, b: int, states: dict[str, int]
    ) -> dict[str, tuple[int, int]]:
        """Usage and new state per series over (a, b], splitting the window if it is too large."""
        try:
            windows = self._windows(metric, selector, a, b)
        except QueryTooLarge:
            if b - a <= MIN_SPLIT_MS:
                raise
            middle = a + (b - a) // 2
            log.info("Split window %d-%d: query too large", a, b)
            first = self._account(metric, selector, a, middle, states)
            later_states = {**states, **{k: s for k, (_, s) in first.items()}}
            second = self._account(metric, selector, middle, b, later_states)
            merged = dict(first)
            for key, (used, state) in second.items():
                merged[key] = (merged.get(key, (0, 0))[0] + used, state)
            return merged
        return {key: advance(states.get(key), window) for key, window in windows.items()}

    def _range(self, a: int, b: int) -> str:
        # Prometheus 2.x range selectors include their left edge, 3.x do not; we want (a, b].
        closed = self.prometheus.closed_ranges()
        return f"{(b - a) - (1 if closed else 0)}ms"

    def _windows(self, metric: str, selector: str, a: int, b: int) -> dict[str, WindowSummary]:
        window = f"{selector}[{self._range(a, b)}] @ {_s(b)}"
        last = self.prometheus.vector(f"last_over_time({window})", b)
        if not last:
            return {}
        minimum = self.prometheus.vector(f"min_over_time({window})", b)
        resets = self.prometheus.vector(f"resets({window}) > 0", b)
        raw = self._raw(metric, selector, a, b, set(resets)) if resets else {}
        return {
            key: WindowSummary(
                last=value,
                minimum=minimum.get(key, value),
                resets=resets.get(key, 0),
                samples=raw.get(key),
            )
            for key, value in last.items()
        }

    def _raw(
        self, metric: str, selector: str, a: int, b: int, keys: set[str]
    ) -> dict[str, tuple[Sample, ...]]:
        """Raw samples in (a, b] of the given series: one query each, or one for all if many."""
        span = self._range(a, b)
        if len(keys) > RAW_PER_SERIES_LIMIT:
            everything = self.prometheus.samples(f"{selector}[{span}] @ {_s(b)}", b)
            return {k: v for k, v in everything.items() if k in keys}
        raw: dict[str, tuple[Sample, ...]] = {}
        for key in keys:
            one = exact_selector(metric, series_labels(key))
            raw.update(self.prometheus.samples(f"{one}[{span}] @ {_s(b)}", b))
        missing = keys - raw.keys()
        if missing:
            raise PrometheusQueryError(f"raw samples missing for {len(missing)} series in {a}-{b}")
        return raw

    def _first_data(
        self, metric: str, selector: str, a: int, b: int
    ) -> tuple[dict[str, tuple[int, int]], int | None]:
        """Accounting for the first bucket with data: series present at its start are baselines."""
        window = f"{selector}[{self._range(a, b)}] @ {_s(b)}"
        if self.prometheus.scalar_count(f"count(last_over_time({window}))", b) == 0:
            return {}, None
        raw = self.prometheus.samples(window, b)
        per_series, first_ms = account_first_data(raw, self.settings.settle_ms)
        return per_series, first_ms


def _s(t_ms: int) -> str:
    """Epoch seconds with millisecond precision, for PromQL's @ modifier."""
    return f"{t_ms / 1000:.3f}"
