"""Zero configuration: which contract a report's counter speaks, asked of Prometheus.

A report without ``source.labels`` is read as its counter's labels say (``domain/contracts.py``).
Which labels the counter carries is asked once per source every 10 minutes: a ``count by`` over
the probed labels, and whether any series has a ``user``.
"""

from __future__ import annotations

from chargeback.adapters.prometheus import PrometheusClient
from chargeback.adapters.ttl import TtlCache
from chargeback.api.report import UsageReportSpec
from chargeback.api.source import SourceSpec
from chargeback.domain.buckets import DAY_MS, HOUR_MS
from chargeback.domain.contracts import PROBED, Contract, Detected, apply, configured, detect
from chargeback.domain.periods import Period
from chargeback.domain.selectors import Matcher, series_selector, source_matchers
from chargeback.services.collect import CollectError, Collector

CACHE_S = 600.0
MAX_WINDOW_MS = 31 * DAY_MS
RECENT_MS = DAY_MS


class ContractDetector:
    """Finds the contract of a report's counter, and the spec that reads it."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self._present: TtlCache[frozenset[str]] = TtlCache(CACHE_S)

    @property
    def prometheus(self) -> PrometheusClient:
        """The Prometheus the collector reads."""
        return self.collector.prometheus

    def resolve(
        self, spec: UsageReportSpec, period: Period, now_ms: int
    ) -> tuple[UsageReportSpec, Detected]:
        """The spec to collect and report with, and what was detected.

        The counter's labels are read from its last day before now (what it speaks today, so
        every period of a report reads it alike), else from the period itself (a past period
        whose counter is gone); no series at all: the default mapping, and collection says why.
        """
        if configured(spec):
            return spec, Detected(Contract.CONFIGURED, preset=spec.source.preset)
        source = spec.source
        at = min(now_ms, period.end_ms)
        windows = (
            (now_ms, RECENT_MS),
            (at, max(HOUR_MS, min(at - period.start_ms, MAX_WINDOW_MS))),
        )
        key = (source.metric, source.selector, now_ms // (int(CACHE_S) * 1000), period.end_ms)
        present = self._present.get(key, lambda: self._labels(source, windows))
        found = Detected(detect(present), present)
        return apply(spec, found), found

    def _labels(self, source: SourceSpec, windows: tuple[tuple[int, int], ...]) -> frozenset[str]:
        """The probed labels the counter's series carry, in the first window that has series."""
        for at, window in windows:
            try:
                metric = self.collector.resolve_metric(source, at - window, at)
            except CollectError:
                continue
            return self._probe(metric, source_matchers(source), at, f"{window // 1000}s")
        return frozenset()

    def _probe(
        self, metric: str, matchers: tuple[Matcher, ...], at: int, span: str
    ) -> frozenset[str]:
        """Which probed labels have values on the series, and whether any has a user."""
        grouped = [label for label in PROBED if label != "user"]
        selector = series_selector(metric, matchers)
        groups = self.prometheus.vector(
            f"count by ({', '.join(grouped)}) (last_over_time({selector}[{span}]))", at
        )
        present = {label for key in groups for label, value in key if value}
        with_user = series_selector(metric, (*matchers, Matcher("user", "!=", "")))
        if self.prometheus.scalar_count(f"count(last_over_time({with_user}[{span}]))", at):
            present.add("user")
        return frozenset(present)
