"""Cost-to-value and forecast sections of a report document.

Both are additions: a report without infrastructure metrics, infrastructure costs or enough
history still renders, and its sections say plainly what is missing and why.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from chargeback.adapters.ledger import Ledger
from chargeback.adapters.prometheus import PrometheusError
from chargeback.api.report import UsageReportSpec
from chargeback.domain.buckets import DAY_MS
from chargeback.domain.forecast import (
    HISTORY_DAYS,
    LEVEL,
    Forecast,
    InsufficientHistory,
    forecast,
)
from chargeback.domain.infra import gpu_hours
from chargeback.domain.periods import Period, scheduled_period
from chargeback.domain.pricing import PriceBook
from chargeback.domain.reports import ReportDocument, iso
from chargeback.domain.sections import CostToValueSection, ForecastNumbers, ForecastSection
from chargeback.domain.value import cost_to_value, unavailable
from chargeback.services.collect import CollectError
from chargeback.services.infra import InfraCollector

log = logging.getLogger(__name__)

INFRA_OFF = (
    "GPU cost collection is switched off in the operator settings "
    "(Helm value infrastructure.enabled, CHARGEBACK_GPU_COSTS)"
)


class ValueService:
    """Computes the cost-to-value and forecast sections; forecasts are cached per day."""

    def __init__(self, ledger: Ledger, infra: InfraCollector | None, bucket_ms: int) -> None:
        self.ledger = ledger
        self.infra = infra
        self.bucket_ms = bucket_ms
        self._forecasts: dict[tuple[Any, ...], ForecastSection] = {}

    def cost_to_value(
        self,
        document: ReportDocument,
        served: Callable[[], set[tuple[str, int]]],
        book: PriceBook,
        *,
        history_start_ms: int,
        ready_ms: int,
    ) -> tuple[CostToValueSection, int]:
        """Collect infrastructure usage up to ``ready_ms`` and set it beside the revenue.

        Returns the section and how far infrastructure usage is settled: a period is final only
        once that reaches its end (a failed read is retried, never frozen into a document).
        """
        if self.infra is None:
            return unavailable(INFRA_OFF), ready_ms
        period = document.period
        try:
            watermark = self.infra.collect(history_start_ms, ready_ms)
        except (PrometheusError, CollectError) as exc:
            log.warning("Infrastructure metrics unavailable: %s", exc)
            return unavailable(f"infrastructure metrics could not be read: {exc}"), 0
        infra = self.infra.usage(period.start_ms, period.end_ms)
        return cost_to_value(document, served(), infra, book, self.bucket_ms), watermark

    def forecast(
        self, source_ids: tuple[str, ...], spec: UsageReportSpec, period: Period, through_ms: int
    ) -> ForecastSection:
        """Tokens (and implied GPU-hours) forecast for the period after ``period``."""
        upcoming = next_period(spec, period)
        last = through_ms - through_ms % DAY_MS
        records = [r for r in map(self.ledger.source, source_ids) if r is not None]
        first_data = min((r.start_ms for r in records), default=last)
        first = max(last - HISTORY_DAYS * DAY_MS, first_data + (-first_data) % DAY_MS)
        horizon = math.ceil((upcoming.end_ms - upcoming.start_ms) / DAY_MS)
        infra_id = self.infra.source_id if self.infra else ""
        key = (source_ids, infra_id, first, last, upcoming.start_ms, horizon)
        cached = self._forecasts.get(key)
        if cached is None:
            cached = self._compute(source_ids, first, last, upcoming, horizon)
            # A new complete day makes this source's older forecasts stale; reports of other
            # periods on the same source keep theirs (no recomputing in turns).
            self._forecasts = {
                k: v for k, v in self._forecasts.items() if k[:2] != key[:2] or k[3] == last
            }
            self._forecasts[key] = cached
        return cached

    def _compute(
        self, source_ids: tuple[str, ...], first: int, last: int, upcoming: Period, horizon: int
    ) -> ForecastSection:
        days = max(0, (last - first) // DAY_MS)
        section: ForecastSection = {
            "available": False,
            "period": {"start": iso(upcoming.start_ms), "end": iso(upcoming.end_ms)},
            "history": {"start": iso(first), "end": iso(max(first, last)), "days": days},
            "interval": f"{LEVEL:.0%}",
        }
        per_model: dict[str, list[int]] = defaultdict(lambda: [0] * days)
        per_tier: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * days)
        for day, model, tier, tokens in self.ledger.daily_usage(source_ids, first, last):
            index = (day - first) // DAY_MS
            per_model[model][index] += tokens
            per_tier[(model, tier)][index] += tokens
        total = [sum(v[i] for v in per_model.values()) for i in range(days)]
        # Days before the data begins are not days without usage: start at the first day with
        # usage, and skip that one too (the data may begin in the middle of it).
        skip = next((i + 1 for i, tokens in enumerate(total) if tokens), days)
        total = total[skip:]
        per_model = {k: v[skip:] for k, v in per_model.items()}
        per_tier = {k: v[skip:] for k, v in per_tier.items()}
        first += skip * DAY_MS
        section["history"] = {"start": iso(first), "end": iso(max(first, last)),
                              "days": len(total)}  # fmt: skip
        try:
            overall = forecast(total, horizon)
            models = {m: forecast(h, horizon) for m, h in sorted(per_model.items())}
            tiers = {k: forecast(h, horizon) for k, h in sorted(per_tier.items())}
        except InsufficientHistory as exc:
            return {**section, "reason": f"not enough history to forecast: {exc}"}
        per_token = self._gpu_ms_per_token(per_model, first, last)
        section.update({
            "available": True,
            "reason": "" if self.infra else INFRA_OFF,
            "totals": _forecast(overall),
            "byModel": [
                {"name": model, **_forecast(f), "gpuHours": _implied(f, per_token.get(model))}
                for model, f in models.items()
            ],
            "byModelTier": [
                {"model": model, "tier": tier, **_forecast(f)}
                for (model, tier), f in tiers.items()
            ],
        })  # fmt: skip
        return section

    def _gpu_ms_per_token(
        self, per_model: dict[str, list[int]], first: int, last: int
    ) -> dict[str, float]:
        """Observed GPU-milliseconds per token of each model over the history."""
        if self.infra is None:
            return {}
        used: dict[str, int] = defaultdict(int)
        for row in self.ledger.gpu_usage(self.infra.source_id, first, last):
            used[row.model] += row.gpu_ms
        return {
            model: used[model] / sum(history)
            for model, history in per_model.items()
            if sum(history) and used.get(model)
        }


def next_period(spec: UsageReportSpec, period: Period) -> Period:
    """The period after ``period``: the next scheduled one, or as long again after a fixed one."""
    if spec.schedule is not None:
        return scheduled_period(period.end_ms, spec.schedule.interval, spec.schedule.time_zone)
    return Period(period.end_ms, 2 * period.end_ms - period.start_ms)


def _forecast(f: Forecast) -> ForecastNumbers:
    return {"tokens": f.tokens, "lower": f.lower, "upper": f.upper}


def _implied(f: Forecast, gpu_ms_per_token: float | None) -> str | None:
    if gpu_ms_per_token is None:
        return None
    return gpu_hours(round(f.tokens * gpu_ms_per_token))
