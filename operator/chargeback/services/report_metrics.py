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
    for dims, count in tokens.items():
        metrics.report_tokens.labels(ns, name, *dims).set(count)
        metrics.report_cost.labels(ns, name, *dims, currency).set(float(cost[dims]))
    metrics.report_unpriced.labels(ns, name).set(document.unpriced_tokens)
    value, forecast = document.cost_to_value, document.forecast
    for model in value["byModel"] if value and value["available"] else []:
        metrics.model_infra_cost.labels(ns, name, model["name"], currency).set(
            float(model["infrastructureCost"])
        )
        metrics.model_gpu_hours.labels(ns, name, model["name"]).set(float(model["gpuHours"]))
    for entry in forecast["byModel"] if forecast and forecast["available"] else []:
        bounds = {"tokens": entry["tokens"], "lower": entry["lower"], "upper": entry["upper"]}
        for bound, tokens_at in bounds.items():
            metrics.forecast_tokens.labels(ns, name, entry["name"], bound).set(tokens_at)
    if collected is not None:
        source = collected.source_id
        metrics.watermark.labels(source).set(collected.watermark_ms / 1000)
        metrics.lag.labels(source).set(max(0, now_ms - collected.watermark_ms) / 1000)
        metrics.gaps.labels(source).set(len(document.gaps))


def reconciled(kind: str, ok: bool, seconds: float) -> None:
    """Count one reconciliation of ``kind`` (TierPricing, UsageReport) and its duration."""
    metrics.reconciles.labels(kind, "ok" if ok else "error").inc()
    metrics.reconcile_seconds.labels(kind).observe(seconds)


def forget(namespace: str, name: str) -> None:
    """Drop the series of a deleted report."""
    metrics.forget_report(namespace, name)
