"""Token collection: a source's ledger advanced from its watermark, one closed bucket per step.

Each step accounts the bucket's usage (``services/accounting.py``: classic or anchored), writes
usage, the state of series that left Prometheus' view and the new watermark in one transaction
through the one collection loop (``services/watermark.py``). A step that fails writes nothing;
re-running it is safe. Stretches where Prometheus holds no data are skipped in one step each and
recorded as gaps. Catching up (more than one closed bucket behind), the buckets of a chunk are
accounted from one pair of range queries, then applied one step each as before; the chunk is
sized so that no more than ``catchup_points`` series x buckets are held at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from chargeback.adapters.ledger import Ledger, SourceRecord
from chargeback.adapters.prometheus import PrometheusClient
from chargeback.api.source import DEFAULT_METRICS, SourceSpec
from chargeback.domain import buckets, promql
from chargeback.domain.buckets import HOUR_MS
from chargeback.domain.counters import State, account_first_data
from chargeback.domain.selectors import Matcher, series_selector, source_matchers
from chargeback.domain.series import SeriesKey, aggregate
from chargeback.domain.usage import Gap, UsageRow
from chargeback.services.accounting import (
    Accounting,
    AnchoredAccounting,
    ClassicAccounting,
    Target,
    Usage,
)
from chargeback.services.collect_plan import CollectionRun
from chargeback.services.watermark import Progress, advance

log = logging.getLogger(__name__)


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
    catchup_buckets: int = 24
    """Most closed buckets accounted from one pair of range queries (1: a query per bucket)."""
    catchup_points: int = 500_000
    """Most values (series or usage groups x buckets) held decoded at once while catching up:
    the chunk being accounted. The next chunk's answers, sent for ahead, wait undecoded (their
    raw bodies, about 32 bytes per value: several times less)."""


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


class Collector:
    """Collects token sources from one Prometheus into one ledger."""

    def __init__(
        self,
        prometheus: PrometheusClient,
        ledger: Ledger,
        settings: CollectorSettings | None = None,
    ) -> None:
        self.prometheus = prometheus
        self.ledger = ledger
        self.settings = settings or CollectorSettings()
        bucket = self.settings.bucket_ms
        self._classic = ClassicAccounting(prometheus, bucket)
        self._anchored = AnchoredAccounting(
            prometheus,
            bucket,
            self.settings.anchor_lookback_ms,
            self.settings.bootstrap_lookback_ms,
        )
        # Per source: (watermark, states) after our last run. Valid while the ledger's watermark
        # still matches, i.e. no other process advanced the source meanwhile.
        self._cache: dict[str, tuple[int, dict[SeriesKey, State]]] = {}

    def accounting(self) -> Accounting:
        """Anchored when configured, or by default whenever Prometheus has it; else classic."""
        anchored = self.settings.anchored
        if anchored is None:
            anchored = self.prometheus.anchored_ranges()
        return self._anchored if anchored else self._classic

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
        # An upgraded Prometheus (or querier) may change its range semantics: probe them again.
        self.prometheus.check_build()
        matchers = source_matchers(source)
        record = self.ledger.source(source.source_id())
        if record is None:
            record = self._bootstrap(source, matchers, buckets.floor(start_ms, bucket))
        elif record.bucket_ms != bucket:
            raise CollectError(
                f"source {record.id} was collected with {record.bucket_ms} ms buckets, "
                f"not {bucket} ms"
            )
        end = buckets.floor(end_ms, bucket)
        if end <= record.watermark_ms:
            return CollectResult(record.id, record.metric, watermark_ms=record.watermark_ms)
        target = Target(source, record, matchers)
        accounting = self.accounting()
        cached = self._cache.pop(record.id, None)
        if cached is not None and cached[0] == record.watermark_ms and record.observing:
            states, observing = cached[1], True
        else:
            states, observing = self._resume(target, keeps_state=accounting.keeps_state)
        run = CollectionRun(self, target, accounting, states, observing=observing,
                   drop_states=record.observing and not observing)  # fmt: skip
        done = advance(self.ledger, record.id, run, watermark_ms=record.watermark_ms,
                       end_ms=end, bucket_ms=bucket, progress=progress)  # fmt: skip
        self._cache[record.id] = (done.watermark_ms, run.states)
        return CollectResult(record.id, record.metric, done.steps, done.tokens, done.watermark_ms,
                             done.gaps, done.conflicted)  # fmt: skip

    def peek(self, source: SourceSpec, now_ms: int) -> tuple[list[UsageRow], int]:
        """Usage from the watermark up to ``now_ms`` (the open bucket), computed, not stored.

        Returns the usage rows (keyed by the start of the bucket they fall in) and the time they
        run through. The ledger and the cache are left as they are.
        """
        record = self.ledger.source(source.source_id())
        if record is None or not record.observing or now_ms <= record.watermark_ms:
            return [], record.watermark_ms if record else now_ms
        target = Target(source, record, source_matchers(source))
        accounting = self.accounting()
        cached = self._cache.get(record.id)
        if cached is not None and cached[0] == record.watermark_ms:
            states = dict(cached[1])
        elif not accounting.keeps_state:
            states = self.ledger.states(record.id)
        else:
            states, _ = self._resume(target)
        rows: list[UsageRow] = []
        a, bucket = record.watermark_ms, self.settings.bucket_ms
        while a < now_ms:
            b = min(buckets.floor(a, bucket) + bucket, now_ms)
            per_series = accounting.account(target, a, b, states)
            if accounting.keeps_state:
                states.update({k: (value, b) for k, (_, value) in per_series.items()})
            totals = aggregate(((k, used) for k, (used, _) in per_series.items()), source)
            start = buckets.floor(a, bucket)
            rows += [UsageRow(start, *dims[:4], tokens, dims[4]) for dims, tokens in totals.items()]
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

    def window(self, selector: str, a: int, b: int) -> str:
        """``selector`` over exactly (a, b] on this Prometheus."""
        return promql.window(selector, a, b, closed=self.prometheus.closed_ranges())

    def _bootstrap(
        self, source: SourceSpec, matchers: tuple[Matcher, ...], w0: int
    ) -> SourceRecord:
        lookback = self.settings.bootstrap_lookback_ms
        metric = self.resolve_metric(source, w0 - lookback, w0 + 366 * 24 * HOUR_MS)
        selector = series_selector(metric, matchers)
        # Series seen in the last bucket before w0 are "seen at w0" (fast path from the start);
        # older ones are kept with their value but take the raw path when they come back.
        previous_bucket = promql.last_value(self.window(selector, w0 - self.settings.bucket_ms, w0))
        recent = self.prometheus.vector(previous_bucket, w0)
        # Only the series missing from `recent` come back: one large response, not two.
        before = promql.last_value(promql.lookback(selector, lookback, w0))
        older = self.prometheus.vector(promql.unless(before, previous_bucket), w0)
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
            # Anchored accounting reads no state of active series (Prometheus anchors them).
            active = recent if self.accounting().keeps_state else {}
            self._cache[record.id] = (w0, {**quiet, **{k: (v, w0) for k, v in active.items()}})
        return stored

    def _resume(
        self, target: Target, *, keeps_state: bool = True
    ) -> tuple[dict[SeriesKey, State], bool]:
        """Per-series state at the watermark, and whether Prometheus still shows the source.

        The ledger persists the state of series that left Prometheus' view; the state of series
        active at the watermark is their last value in the bucket before it, read back from
        Prometheus (one query per collection run instead of a write per series per step).
        Anchored accounting reads nothing back (Prometheus anchors each series itself): one count.
        """
        record = target.record
        states = self.ledger.states(record.id)
        if not record.observing:
            return states, False
        w = record.watermark_ms
        if keeps_state:
            previous = self.window(target.selector, w - self.settings.bucket_ms, w)
            active = self.prometheus.vector(promql.last_value(previous), w)
            states.update({k: (v, w) for k, v in active.items()})
            if active or not states:
                return states, True
        recent = promql.lookback(target.selector, self.settings.gap_tolerance_ms, w)
        if self.prometheus.scalar_count(promql.present(recent), w) > 0:
            return states, True
        log.warning("Lost data of source %s at its watermark: recording a gap", record.id)
        return {}, False

    def empty_until(self, target: Target, a: int, end: int) -> int:
        """The furthest bucket edge up to which Prometheus holds no data after ``a``.

        Doubling windows: one cheap count query per doubling, instead of one per empty bucket.
        """
        bucket = self.settings.bucket_ms
        reached, span = a, bucket
        while reached < end:
            probe = min(reached + span, end)
            window = self.window(target.selector, reached, probe)
            if self.prometheus.scalar_count(promql.present(window), probe) > 0:
                break
            reached, span = probe, span * 2
        return reached

    def first_data(self, target: Target, a: int, b: int) -> tuple[Usage, int | None]:
        """Accounting for the first bucket with data: series present at its start are baselines."""
        window = self.window(target.selector, a, b)
        if self.prometheus.scalar_count(promql.present(window), b) == 0:
            return {}, None
        raw = self.prometheus.samples(window, b)
        per_series, first_ms = account_first_data(raw, self.settings.settle_ms)
        return per_series, first_ms
