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
from chargeback.domain.selectors import Matcher, parse_selector, series_selector
from chargeback.services.collect import Collector

CACHE_S = 600.0
MAX_WINDOW_MS = 31 * DAY_MS


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
        """The spec to collect and report with, and what was detected."""
        if configured(spec):
            return spec, Detected(Contract.CONFIGURED)
        at = min(now_ms, period.end_ms)
        window = max(HOUR_MS, min(at - period.start_ms, MAX_WINDOW_MS))
        source = spec.source
        key = (source.metric, source.selector, at // (int(CACHE_S) * 1000))
        present = self._present.get(key, lambda: self._labels(source, at, window))
        found = Detected(detect(present), present)
        return apply(spec, found), found

    def _labels(self, source: SourceSpec, at: int, window: int) -> frozenset[str]:
        """The probed labels that some series of the counter carries (non-empty)."""
        metric = self.collector.resolve_metric(source, at - window, at)
        matchers = parse_selector(source.selector)
        span = f"{window // 1000}s"
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
