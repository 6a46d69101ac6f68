"""The operator's Prometheus metrics of a report: tokens, cost, insight and collection health."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from chargeback.adapters import metrics
from chargeback.adapters.exports import Owner
from chargeback.domain.budgets import Reading
from chargeback.domain.reports import ReportDocument
from chargeback.services.collect import CollectResult


def publish(
    owner: Owner,
    document: ReportDocument,
    collected: CollectResult | None,
    now_ms: int,
    budgets: Sequence[Reading] = (),
) -> None:
    """Replace the report's series (and its budgets') with the numbers of ``document``."""
    currency = document.currency
    series = metrics.ReportSeries(owner.namespace, owner.name)
    tokens: dict[tuple[str, str, str, str], int] = {}
    cost: dict[tuple[str, str, str, str], Decimal] = {}
    for line in document.lines:
        dims = (line.team, line.tier, line.model, line.token_type)
        tokens[dims] = tokens.get(dims, 0) + line.tokens
        cost[dims] = cost.get(dims, Decimal(0)) + line.cost
    for dims, count in tokens.items():
        series.set(metrics.report_tokens, dims, count)
        series.set(metrics.report_cost, (*dims, currency), float(cost[dims]))
    series.set(metrics.report_unpriced, (), document.unpriced_tokens)
    value, forecast = document.cost_to_value, document.forecast
    for model in value["byModel"] if value and value["available"] else []:
        series.set(metrics.model_infra_cost, (model["name"], currency),
                   float(model["infrastructureCost"]))  # fmt: skip
        series.set(metrics.model_gpu_hours, (model["name"],), float(model["gpuHours"]))
    for entry in forecast["byModel"] if forecast and forecast["available"] else []:
        bounds = {"tokens": entry["tokens"], "lower": entry["lower"], "upper": entry["upper"]}
        for bound, tokens_at in bounds.items():
            series.set(metrics.forecast_tokens, (entry["name"], bound), tokens_at)
    for r in budgets:
        labels = (r.budget.name, r.budget.scope, r.budget.match or "", currency)
        series.set(metrics.budget_amount, labels, float(r.amount))
        series.set(metrics.budget_spent, labels, float(r.spent))
        if r.projected is not None:
            series.set(metrics.budget_projected, labels, float(r.projected))
    series.prune()
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
