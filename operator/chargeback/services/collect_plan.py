"""The planner of one collect call, run by the collection loop (``services/watermark.py``).

A step per bucket; while catching up, the steps of a chunk of buckets accounted from range
queries (the next chunk's queries sent ahead); over a stretch without data, one jump.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from chargeback.adapters.ledger import Step
from chargeback.adapters.prometheus import QueryTooLarge
from chargeback.domain.counters import State
from chargeback.domain.series import Dimensions, SeriesKey, aggregate
from chargeback.domain.usage import Gap, UsageRow
from chargeback.services.accounting import Accounting, Answers, Target, Usage

if TYPE_CHECKING:
    from chargeback.services.collect import Collector

log = logging.getLogger(__name__)

CLASSIC_SHARE = 4
"""Classic accounting also holds every series' state and its labels, beside the chunk: its chunks
get a quarter of ``catchup_points`` (measured at 100k series on Prometheus 2.42: 447 MiB with one
bucket per chunk, about 33 MiB more per bucket)."""

Pending = Callable[[], dict[int, dict[SeriesKey, int]]]
"""A range query sent ahead: called, waits for its answer and decodes it."""

NO_DATA_GAP = (
    "Prometheus holds no data of this source for this range "
    "(before its data begins, or beyond its retention)"
)


class CollectionRun:
    """One collect call's plan: a step per bucket, or a chunk's steps, or a jump over no data.

    A chunk's steps come from range queries while catching up; a jump spans a stretch where
    Prometheus holds nothing.
    """

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
        self._widest = len(states) if accounting.keeps_state else 0
        """The most series or groups one bucket's answer held so far (0: not known yet)."""
        self._points = settings.catchup_points // (CLASSIC_SHARE if accounting.keeps_state else 1)
        wide = max(1, self._widest or self._points // 2)
        self._ahead: tuple[tuple[int, int], list[Pending]] | None
        self._ahead = None
        """The next chunk's (start, buckets) and its queries, sent before it is planned."""
        self._dims: dict[SeriesKey, Dimensions] = {}
        """Each series' usage dimensions, worked out once per run."""
        self._ceiling = settings.catchup_buckets
        """Fewer buckets than Prometheus refused to answer in one query."""
        self._chunk = max(1, min(self._ceiling, self._points // wide))

    def plan(self, a: int, end: int) -> Iterable[Step]:
        """The next step from ``a``, or the steps of a catch-up chunk (built one at a time)."""
        source_id = self.target.record.id
        b = a if self.observing else self.collector.empty_until(self.target, a, end)
        if b > a:
            # Where Prometheus holds nothing yet, jump over the empty stretch in one step.
            gap = Gap(a, b, NO_DATA_GAP)
            return [Step(source_id, a, b, [], {}, self.drop_states, False, gap)]
        bucket = self.collector.settings.bucket_ms
        n = min(self._chunk, (end - a) // bucket) if self.observing else 1
        if self._ahead is not None and self._ahead[0][0] == a:
            n = self._ahead[0][1]  # sent ahead, sized by the widest answer seen then
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

    def _chunk_steps(self, a: int, n: int, end: int) -> Iterator[Step]:
        """The steps of ``n`` buckets from ``a``, accounted from range queries.

        The answers are taken now (Prometheus may refuse the chunk as too large); the steps are
        built one at a time as the loop applies them, so one bucket's rows are held at once.
        """
        answers = self._answers(a, n, end)
        # One copy of the states, brought up to each bucket's start: the accounting reads it
        # (classic), the step persists the series that left from it.
        states = dict(self.states) if self.accounting.keeps_state else self.states
        usages = self.accounting.account_buckets(self.target, a, states, answers)
        return self._steps(a, n, usages, states)

    def _steps(
        self, a: int, n: int, usages: Iterator[Usage], states: dict[SeriesKey, State]
    ) -> Iterator[Step]:
        bucket = self.collector.settings.bucket_ms
        for lo in range(a, a + n * bucket, bucket):
            try:
                per_series = next(usages)
            except QueryTooLarge:
                # Too many raw samples of a bucket's flagged series for one query: the rest of
                # the chunk bucket by bucket, whose windows split in halves until answered.
                log.info("Raw samples refused in one query: bucket by bucket from %d", lo)
                for rest in range(lo, a + n * bucket, bucket):
                    yield self._step(rest, rest + bucket, self._account(rest, rest + bucket))
                return
            yield self._step(lo, lo + bucket, (per_series, None), states)
            if self.accounting.keeps_state:
                states.update({k: (value, lo + bucket) for k, (_, value) in per_series.items()})

    def _answers(self, a: int, n: int, end: int) -> Answers:
        """The range answers of ``n`` buckets from ``a``; the next chunk's queries sent ahead.

        Ahead as soon as the width of an answer is known, before this chunk is decoded,
        accounted and written, so Prometheus answers them meanwhile.
        """
        bucket = self.collector.settings.bucket_ms
        pending, self._ahead = self._pending(a, n), None
        if self._widest:
            self._send_ahead(a + n * bucket, end)
        answers = [answer() for answer in pending]
        widest = max(1, *(len(vector) for answer in answers for vector in answer.values()))
        if widest > self._widest:
            self._widest = widest
            self._chunk = max(1, min(self._ceiling, self._points // widest))
            if self._ahead is None:
                self._send_ahead(a + n * bucket, end)
        return answers

    def _pending(self, a: int, n: int) -> list[Pending]:
        """The range queries for ``n`` buckets from ``a``: those sent ahead, else sent now."""
        ahead = self._ahead
        return ahead[1] if ahead is not None and ahead[0] == (a, n) else self._send(a, n)

    def _send_ahead(self, start: int, end: int) -> None:
        """Send the queries of the chunk from ``start``, if it has more than one bucket."""
        following = min(self._chunk, (end - start) // self.collector.settings.bucket_ms)
        if following > 1:
            self._ahead = (start, following), self._send(start, following)

    def _send(self, a: int, n: int) -> list[Pending]:
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
            for (user, tier, model, extra, token_type), tokens in totals.items()
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
