"""Reports: collect a report's period, price and attribute it, finalise it once it is over.

A finalised period's document is stored in the ledger with the price versions it used and is
never computed again: re-rendering it returns the stored bytes, whatever prices say later.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from chargeback.adapters.ledger import Ledger
from chargeback.adapters.pricing_ledger import FinalDocument, PricingLedger
from chargeback.api.report import UsageReportSpec
from chargeback.domain import formats
from chargeback.domain.attribution import TeamResolver
from chargeback.domain.contracts import Contract, Detected
from chargeback.domain.formats import DEFAULT_CONTEXT, ExportContext, json_document
from chargeback.domain.periods import Period, check_aligned, is_final, report_period
from chargeback.domain.pricing import PriceBook
from chargeback.domain.reports import ReportDocument, build_document
from chargeback.domain.usage import Gap, UsageRow
from chargeback.services.collect import Collector, CollectResult
from chargeback.services.contracts import ContractDetector
from chargeback.services.infra import InfraCollector
from chargeback.services.value import ValueService

log = logging.getLogger(__name__)

HISTORY_GAP = "before the ledger's history of this source begins"
PREVIOUS_LOOKBACK = 120
"""Finalised periods searched for the one before a period (newest first)."""
SCRAPE_DELAY_MS = 120_000
"""Buckets are collected only this long after they close, so late scrapes are in."""


@dataclass
class Rendered:
    """A report document for one period, whether it is final, and its renditions."""

    period: Period
    document: ReportDocument
    finalized: bool
    collected: CollectResult | None
    texts: dict[str, str] = field(default_factory=dict)
    """Renditions by format name, rendered on first use (a finalised period's as stored)."""
    context: ExportContext = DEFAULT_CONTEXT
    """The names finance exports carry (settings)."""
    detected: Detected | None = None
    """How the counter was read (None for a finalised period read from the ledger)."""
    spec: UsageReportSpec | None = None
    """The report's spec as it was read (labels as detected)."""

    def text(self, fmt: str) -> str:
        """The document in the registered format ``fmt``."""
        if fmt not in self.texts:
            self.texts[fmt] = formats.get(fmt).render(self.document, self.context)
        return self.texts[fmt]

    def renditions(self) -> dict[str, str]:
        """Every registered format's rendition, by ConfigMap key (``report.<format>``)."""
        return {f.key: self.text(f.name) for f in formats.formats()}


class ReportService:
    """Renders and finalises report periods from one ledger and one Prometheus."""

    def __init__(
        self,
        collector: Collector,
        ledger: Ledger,
        infra: InfraCollector | None = None,
        context: ExportContext = DEFAULT_CONTEXT,
        plan_teams: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self.context = context
        self.plan_teams = plan_teams
        """The team of each MaaS subscription, for counters without a cost centre."""
        self.collector = collector
        self.ledger = ledger
        self.finals = PricingLedger(ledger)
        self.value = ValueService(ledger, infra, collector.settings.bucket_ms)
        self.contracts = ContractDetector(collector)

    def render(
        self,
        report: str,
        spec: UsageReportSpec,
        book: PriceBook,
        *,
        now_ms: int,
        period: Period | None = None,
        groups: Mapping[str, list[str]] | None = None,
        history_start_ms: int | None = None,
        scope: tuple[str, str] | None = None,
    ) -> Rendered:
        """The document of ``period`` (default: the period the report shows at ``now_ms``).

        Collects the period first (catching up from the ledger's watermark), then finalises
        it if its grace period has passed and every bucket of it is collected.
        """
        period = period or report_period(spec, now_ms)
        check_aligned(period, self.collector.settings.bucket_ms)
        stored = self.finals.final(report, period.start_ms)
        if stored is not None:
            return _rendered(stored, None, self.context)
        spec, detected = self.contracts.resolve(spec, period, now_ms)
        ready = min(now_ms - SCRAPE_DELAY_MS, period.end_ms)
        start = period.start_ms if history_start_ms is None else history_start_ms
        collected, ids, usage, through = self._collect(spec, book, period, (start, ready), now_ms)
        document = build_document(
            report=report,
            period=period,
            usage=usage,
            book=book,
            teams=TeamResolver(spec.attribution, groups, self._plans(detected)),
            gaps=[gap for i in ids for gap in self._gaps(i, period)],
            data_through_ms=through,
            top_n=spec.top_users,
        )

        def served() -> set[tuple[str, int]]:
            live = {(r.model, r.bucket_start_ms) for r in usage
                    if r.tokens and r.bucket_start_ms >= collected.watermark_ms}  # fmt: skip
            return self.ledger.served(ids, period.start_ms, period.end_ms) | live

        value, settled = self.value.cost_to_value(
            document, served, book, history_start_ms=start, ready_ms=max(ready, start)
        )
        final = (
            is_final(period, spec, now_ms)
            and collected.watermark_ms >= period.end_ms
            and settled >= period.end_ms
        )
        forecast = self.value.forecast(ids, spec, period, collected.watermark_ms)
        document = replace(document, finalized=final, cost_to_value=value, forecast=forecast,
                           scope=scope)  # fmt: skip
        rendered = Rendered(period, document, final, collected, context=self.context,
                            detected=detected, spec=spec)  # fmt: skip
        return self._finalize(report, rendered, now_ms) if final else rendered

    def _collect(
        self,
        spec: UsageReportSpec,
        book: PriceBook,
        period: Period,
        span: tuple[int, int],
        now_ms: int,
    ) -> tuple[CollectResult, tuple[str, ...], list[UsageRow], int]:
        """Collect every counter of the source.

        Returns the result, the ledger's source ids, the period's usage and when it runs through.
        ``span``: where history starts, and up to when buckets are closed. The stored usage is
        summed in SQL per price version, unless included tokens need it bucket by bucket (they
        are used up in time order).
        """
        start, ready = span
        parts = spec.source.parts()
        results = [self.collector.collect(part, start, max(ready, start)) for part in parts]
        collected = replace(results[0], watermark_ms=min(r.watermark_ms for r in results),
                            steps=sum(r.steps for r in results))  # fmt: skip
        ids = tuple(r.source_id for r in results)
        if any(t.included_tokens for v in book.versions for t in v.spec.tiers):
            usage = [r for i in ids for r in self.ledger.usage(i, period.start_ms, period.end_ms)]
        else:
            edges = [v.effective_from_ms for v in book.versions]
            usage = self.ledger.usage_by_segment(ids, period.start_ms, period.end_ms, edges)
        through = collected.watermark_ms
        if now_ms < period.end_ms:
            # The open period also shows the bucket in progress: computed live, never stored.
            live_through = []
            for part in parts:
                live, reached = self.collector.peek(part, now_ms)
                usage += live
                live_through.append(reached)
            through = min(live_through)
        if through == collected.watermark_ms and collected.steps == 0:
            # Nothing was asked of Prometheus; still tell an outage apart from a quiet hour.
            self.collector.prometheus.ping()
        return collected, ids, usage, through

    def _plans(self, detected: Detected) -> Mapping[str, str] | None:
        """Subscriptions' teams, where the plan is a subscription (MaaS v0.2+)."""
        if self.plan_teams is None or detected.contract is not Contract.SUBSCRIPTIONS:
            return None
        return self.plan_teams()

    def _gaps(self, source_id: str, period: Period) -> list[Gap]:
        """The source's recorded gaps, and where its history begins after the period does."""
        gaps = self.ledger.gaps(source_id)
        record = self.ledger.source(source_id)
        if record is not None and record.start_ms > period.start_ms:
            # Another report bootstrapped this source later than this period begins.
            gaps.insert(0, Gap(period.start_ms, record.start_ms, HISTORY_GAP))
        return gaps

    def _finalize(self, report: str, rendered: Rendered, now_ms: int) -> Rendered:
        """Store a final document once; what is stored (first writer's) is what is served."""
        period = rendered.period
        log.info("Finalised report %s for the period starting %d", report, period.start_ms)
        stored = self.finals.finalize(
            FinalDocument(
                report=report,
                period_start_ms=period.start_ms,
                period_end_ms=period.end_ms,
                document=rendered.text("json"),
                csv=rendered.text("csv"),
                finalized_ms=now_ms,
            )
        )
        kept = _rendered(stored, rendered.collected, self.context)
        return replace(kept, detected=rendered.detected, spec=rendered.spec)

    def is_final(self, report: str, period_start_ms: int) -> bool:
        """Whether that period of the report is finalised."""
        return self.finals.final(report, period_start_ms) is not None

    def final(self, report: str, period_start_ms: int) -> Rendered | None:
        """A finalised period as stored, or None."""
        stored = self.finals.final(report, period_start_ms)
        return None if stored is None else _rendered(stored, None, self.context)

    def previous_final(self, report: str, period_start_ms: int) -> Rendered | None:
        """The finalised period ending where ``period_start_ms`` begins, or None."""
        for start, end in self.finals.final_periods(report, PREVIOUS_LOOKBACK):
            if end == period_start_ms:
                return self.final(report, start)
        return None


def _rendered(
    stored: FinalDocument, collected: CollectResult | None, context: ExportContext
) -> Rendered:
    """A stored document: its stored renditions are served byte for byte."""
    period = Period(stored.period_start_ms, stored.period_end_ms)
    document = json_document.parse(stored.document)
    texts = {"json": stored.document, "csv": stored.csv}
    return Rendered(period, document, True, collected, texts, context)


@dataclass(frozen=True)
class Packed:
    """A rendered period kept for serving, small: its canonical JSON, compressed."""

    period: Period
    finalized: bool
    json_zlib: bytes
    context: ExportContext
    texts: dict[str, str] = field(default_factory=dict)
    """A finalised period's stored texts (served byte for byte); empty for an open one."""


def pack(rendered: Rendered) -> Packed:
    """What serving ``rendered`` later needs (an open period's texts are re-rendered)."""
    texts = dict(rendered.texts) if rendered.finalized else {}
    compressed = zlib.compress(rendered.text("json").encode(), 1)
    return Packed(rendered.period, rendered.finalized, compressed, rendered.context, texts)


def unpack(packed: Packed) -> Rendered:
    """The rendered period back: its document parsed from the JSON it was rendered as."""
    text = zlib.decompress(packed.json_zlib).decode()
    texts = {"json": text, **packed.texts}
    return Rendered(packed.period, json_document.parse(text), packed.finalized, None, texts,
                    packed.context)  # fmt: skip
