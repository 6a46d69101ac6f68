"""The operator's Prometheus metrics of a report: tokens, cost, insight and collection health."""

from __future__ import annotations

from decimal import Decimal

from chargeback.adapters import metrics
from chargeback.adapters.exports import Owner
from chargeback.domain.reports import ReportDocument
from chargeback.services.collect import CollectResult


def publish(
    owner: Owner, document: ReportDocument, collected: CollectResult | None, now_ms: int
) -> None:
    """Replace the report's series with the numbers of ``document``."""
    ns, name, currency = owner.namespace, owner.name, document.currency
    metrics.forget_report(ns, name)
    tokens: dict[tuple[str, str, str], int] = {}
    cost: dict[tuple[str, str, str], Decimal] = {}
    for line in document.lines:
        dims = (line.team, line.tier, line.model)
        tokens[dims] = tokens.get(dims, 0) + line.tokens
        cost[dims] = cost.get(dims, Decimal(0)) + line.cost
    for dims, value in tokens.items():
        metrics.report_tokens.labels(ns, name, *dims).set(value)
        metrics.report_cost.labels(ns, name, *dims, currency).set(float(cost[dims]))
    metrics.report_unpriced.labels(ns, name).set(document.unpriced_tokens)
    value, forecast = document.section("costToValue"), document.section("forecast")
    for model in value["byModel"] if value and value["available"] else []:
        metrics.model_infra_cost.labels(ns, name, model["name"], currency).set(
            float(model["infrastructureCost"])
        )
        metrics.model_gpu_hours.labels(ns, name, model["name"]).set(float(model["gpuHours"]))
    for model in forecast["byModel"] if forecast and forecast["available"] else []:
        for bound in ("tokens", "lower", "upper"):
            metrics.forecast_tokens.labels(ns, name, model["name"], bound).set(model[bound])
    if collected is not None:
        source = collected.source_id
        metrics.watermark.labels(source).set(collected.watermark_ms / 1000)
        metrics.lag.labels(source).set(max(0, now_ms - collected.watermark_ms) / 1000)
        metrics.gaps.labels(source).set(len(document.gaps))
