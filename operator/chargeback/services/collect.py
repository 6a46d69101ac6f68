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
from concurrent.futures import Future
from dataclasses import dataclass, field

from chargeback.adapters.ledger import Ledger, SourceRecord, Step
from chargeback.adapters.prometheus import PrometheusClient, QueryTooLarge
from chargeback.api.source import DEFAULT_METRICS, SourceSpec
from chargeback.domain import buckets, promql
from chargeback.domain.buckets import HOUR_MS
from chargeback.domain.counters import State, account_first_data
from chargeback.domain.selectors import Matcher, series_selector, source_matchers
from chargeback.domain.series import Dimensions, SeriesKey, aggregate
from chargeback.domain.usage import Gap, UsageRow
from chargeback.services.accounting import (
    Accounting,
    AnchoredAccounting,
    Answers,
    ClassicAccounting,
    Target,
    Usage,
)
from chargeback.services.watermark import Progress, advance

log = logging.getLogger(__name__)

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
    catchup_buckets: int = 24
    """Most closed buckets accounted from one pair of range queries (1: a query per bucket)."""
    catchup_points: int = 400_000
    """Most values (series or usage groups x buckets) a catch-up chunk may hold at once."""


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
        run = _Run(self, target, accounting, states, observing=observing,
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
            self._cache[record.id] = (w0, {**quiet, **{k: (v, w0) for k, v in recent.items()}})
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


class _Run:
    """One collect call's plan: a step per bucket, or one jump over a stretch without data."""

    def __init__(
        self,
        collector: Collector,
        target: Target,
        accounting: Accounting,
        states: dict[SeriesKey, State],
        *,
        observing: bool,
        drop_states: bool,
    ) -> None:
        self.collector = collector
        self.target = target
        self.accounting = accounting
        self.states = states
        self.observing = observing
        self.drop_states = drop_states
        self._series: dict[int, Usage] = {}
        """Per end of a planned step: each series' usage and new value, kept when applied."""
        # Classic accounting holds every series; anchored holds usage groups, unknown until the
        # first chunk (two buckets) shows them.
        settings = collector.settings
        wide = max(1, len(states)) if accounting.keeps_state else settings.catchup_points // 2
        self._ahead: tuple[tuple[int, int], list[Future[dict[int, dict[SeriesKey, int]]]]] | None
        self._ahead = None
        """The next chunk's (start, buckets) and its queries, sent before it is planned."""
        self._dims: dict[SeriesKey, Dimensions] = {}
        """Each series' usage dimensions, worked out once per run."""
        self._ceiling = settings.catchup_buckets
        """Fewer buckets than Prometheus refused to answer in one query."""
        self._chunk = max(1, min(self._ceiling, settings.catchup_points // wide))

    def plan(self, a: int, end: int) -> list[Step]:
        """The next step from ``a``, or the steps of a catch-up chunk."""
        source_id = self.target.record.id
        b = a if self.observing else self.collector.empty_until(self.target, a, end)
        if b > a:
            # Where Prometheus holds nothing yet, jump over the empty stretch in one step.
            gap = Gap(a, b, NO_DATA_GAP)
            return [Step(source_id, a, b, [], {}, self.drop_states, False, gap)]
        bucket = self.collector.settings.bucket_ms
        n = min(self._chunk, (end - a) // bucket) if self.observing else 1
        while n > 1:
            try:
                return self._chunk_steps(a, n, end)
            except QueryTooLarge:
                n = self._chunk = self._ceiling = n // 2
                log.info("Catch-up chunk too large for Prometheus: at most %d buckets per query", n)
        return [self._step(a, a + bucket, self._account(a, a + bucket))]

    def applied(self, step: Step) -> None:
        """Keep the new value of every series seen in the step."""
        series = self._series.pop(step.to_ms, {})
        self.states.update({k: (value, step.to_ms) for k, (_, value) in series.items()})
        self.observing, self.drop_states = step.observing, False

    def _chunk_steps(self, a: int, n: int, end: int) -> list[Step]:
        """The steps of ``n`` buckets from ``a``, accounted from range queries.

        The next chunk's queries are sent before this one is accounted and written, so
        Prometheus answers them meanwhile.
        """
        bucket, settings = self.collector.settings.bucket_ms, self.collector.settings
        answers = self._answers(a, n)
        widest = max(1, *(len(vector) for answer in answers for vector in answer.values()))
        self._chunk = max(1, min(self._ceiling, settings.catchup_points // widest))
        following = min(self._chunk, (end - a) // bucket - n)
        if following > 1:
            self._ahead = (a + n * bucket, following), self._send(a + n * bucket, following)
        usages = self.accounting.account_buckets(self.target, a, self.states, answers)
        states = dict(self.states) if self.accounting.keeps_state else self.states
        steps = []
        for i, per_series in enumerate(usages):
            lo = a + i * bucket
            steps.append(self._step(lo, lo + bucket, (per_series, None), states))
            if self.accounting.keeps_state:
                states.update({k: (value, lo + bucket) for k, (_, value) in per_series.items()})
        return steps

    def _answers(self, a: int, n: int) -> Answers:
        """The range answers for ``n`` buckets from ``a``: those sent ahead, else sent now."""
        ahead, self._ahead = self._ahead, None
        futures = ahead[1] if ahead is not None and ahead[0] == (a, n) else self._send(a, n)
        return [future.result() for future in futures]

    def _send(self, a: int, n: int) -> list[Future[dict[int, dict[SeriesKey, int]]]]:
        """Send the range queries over ``n`` buckets from ``a``."""
        queries, lookback = self.accounting.range_queries(self.target)
        bucket = self.collector.settings.bucket_ms
        span = (a + bucket, a + n * bucket, bucket)
        return self.collector.prometheus.vectors_over_later(queries, span, lookback)

    def _account(self, a: int, b: int) -> tuple[Usage, int | None]:
        """Usage over (a, b]; while not observing, also when its first data came (or None)."""
        if self.observing:
            return self.accounting.account(self.target, a, b, self.states), None
        return self.collector.first_data(self.target, a, b)

    def _step(
        self,
        a: int,
        b: int,
        accounted: tuple[Usage, int | None],
        states: dict[SeriesKey, State] | None = None,
    ) -> Step:
        """The step over (a, b]; remembers each series' usage and new value for :meth:`applied`.

        ``states``: the state of every series at ``a`` (the collector's, unless given).
        """
        per_series, first_ms = accounted
        gap, observing = None, self.observing
        if not observing:
            gap = Gap(a, b if first_ms is None else first_ms, NO_DATA_GAP)
            observing = first_ms is not None
        totals = aggregate(
            ((k, used) for k, (used, _) in per_series.items()), self.target.source, self._dims
        )
        rows = [
            UsageRow(a, user, tier, model, extra, tokens, token_type)
            for (user, tier, model, extra, token_type), tokens in sorted(totals.items())
        ]
        # Series seen in the previous window but not in this one left Prometheus' view: persist
        # their state, since it can no longer be read back at the watermark. (Anchored
        # accounting keeps no per-series state: Prometheus holds each series' last value.)
        stateless = observing and not self.accounting.keeps_state
        before = self.states if states is None else states
        left = (
            {}
            if stateless
            else {k: st for k, st in before.items() if st[1] == a and k not in per_series}
        )
        self._series[b] = {} if stateless else per_series
        return Step(source_id=self.target.record.id, from_ms=a, to_ms=b, usage=rows, states=left,
                    drop_states=self.drop_states, observing=observing, gap=gap)  # fmt: skip
