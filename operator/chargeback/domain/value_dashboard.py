"""The cost-to-value dashboard (grafana-foundation-sdk, like the usage dashboard).

Revenue against infrastructure cost per model, utilisation, idle GPUs and the operator's
forecast.
"""

from __future__ import annotations

from typing import Any

from chargeback.api.pricing import TierPricingSpec
from chargeback.api.source import SourceSpec
from chargeback.domain.cost_queries import cost_expr, tokens_expr
from chargeback.domain.dashboards import (
    REPORT_VARIABLE,
    Board,
    PanelSpec,
    grafana,
    usage_board,
)
from chargeback.domain.infra import InfraSource
from chargeback.domain.money import parse_decimal
from chargeback.domain.names import GRAFANA_UID, fit


def _products(products: list[str]) -> str:
    """A vector with one series per GPU product (label product), each of value 1."""
    return " or ".join(f'label_replace(vector(1), "product", "{p}", "", "")' for p in products)


def _on_products(expr: str, products: list[str], factor: str) -> str:
    """``expr`` (labelled by product) restricted to ``products``, times ``factor``."""
    return f"(({expr}) * on (product) group_left () ({_products(products)})) * {factor}"


def infra_cost_expr(pricing: TierPricingSpec, infra: InfraSource) -> str:
    """Infrastructure cost per hour by model.

    GPUs by product times their rates, plus fixed monthly costs spread over the hours of the UTC
    calendar month (the reports' rule: :func:`chargeback.domain.value.month_ms`).
    """
    costs = pricing.infrastructure
    if costs is None:
        return "vector(0)"
    gpus = infra.gpus()
    named = [p.name for p in costs.gpu_products]
    terms = [_on_products(gpus, [p.name], p.gpu_hour) for p in costs.gpu_products]
    others = f"({gpus}) * {costs.gpu_hour}"
    if named:
        others = f"(({gpus}) unless on (product) ({_products(named)})) * {costs.gpu_hour}"
    terms.append(others)
    month_hours = "(24 * days_in_month(vector(time())))"  # UTC, like value.month_ms
    for model in costs.models:
        monthly = format(parse_decimal(model.monthly), "f")
        hourly = f"vector({monthly}) / {month_hours}"
        terms.append(f'label_replace({hourly}, "model", "{model.name}", "", "")')
    return f"sum by (model) ({' or '.join(terms)})"


def value_panels(
    pricing: TierPricingSpec, source: SourceSpec, metric: str, infra: InfraSource
) -> list[PanelSpec]:
    """Cost-to-value panels.

    Revenue against infrastructure cost per model over time, utilisation, idle GPUs and the
    operator's forecast.
    """
    money = f"currency{pricing.currency}"
    model = source.labels.model
    revenue = cost_expr(pricing, source, metric, model, "1h")
    if model != "model":
        revenue = f'label_replace({revenue}, "model", "$1", "{model}", "(.*)")'
    tokens = f"sum by ({model}) ({tokens_expr(source, metric, '1h')})"
    if model != "model":
        tokens = f'label_replace({tokens}, "model", "$1", "{model}", "(.*)")'
    infra_cost = infra_cost_expr(pricing, infra)
    gpus = f"sum by (model) ({infra.gpus()})"
    util = infra.utilization()
    report = 'report=~"$report"'
    return [
        PanelSpec("Revenue by model (per hour)", "timeseries", f"sum by (model) ({revenue})",
                  unit=money, instant=False, legend="{{model}}", width=12, height=8,
                  interval="1h"),
        PanelSpec("Infrastructure cost by model (per hour)", "timeseries", infra_cost,
                  unit=money, instant=False, legend="{{model}}", width=12, height=8,
                  description="GPUs allocated to serving pods times the GPU-hour rate of "
                  "their product, plus fixed monthly costs over the hours of the calendar "
                  "month (UTC), as in the reports."),
        PanelSpec("Infrastructure cost per 1M tokens", "timeseries",
                  f"({infra_cost}) / ({tokens} > 0) * 1000000", unit=money, instant=False,
                  legend="{{model}}", width=12, height=8, interval="1h"),
        PanelSpec("GPU utilisation by model", "timeseries",
                  f"sum by (model) ({util}) / count by (model) ({util})", unit="percent",
                  instant=False, legend="{{model}}", width=12, height=8),
        PanelSpec("Allocated GPUs by model", "timeseries", gpus, instant=False,
                  legend="{{model}}", width=12, height=8),
        PanelSpec("Idle GPUs (models serving no tokens in the last hour)", "timeseries",
                  f"{gpus} unless on (model) ({tokens} > 0)", instant=False,
                  legend="{{model}}", width=12, height=8),
        PanelSpec("Margin by model (open period)", "bargauge",
                  f"sum by (model) (chargeback_report_cost{{{report}}}) - sum by (model) "
                  f"(chargeback_model_infrastructure_cost{{{report}}})", unit=money,
                  legend="{{model}}", width=12, height=8),
        PanelSpec("Forecast tokens of the next period", "table",
                  f"sum by (model, bound) (chargeback_forecast_tokens{{{report}}})",
                  legend="{{model}} {{bound}}", width=12, height=8,
                  description="From the report's forecast: expected tokens with the lower "
                  "and upper end of its interval."),
    ]  # fmt: skip


def value_board(
    name: str, pricing: TierPricingSpec, source: SourceSpec, metric: str, infra: InfraSource
) -> Board:
    """The cost-to-value dashboard of one pricing and source."""
    return Board(
        title=f"AI models: cost to value ({name})",
        uid=fit(f"chargeback-value-{name}", GRAFANA_UID),
        tags=("chargeback", "ai-gateway", "cost-to-value"),
        since="7d",
        refresh="15m",
        variables=(REPORT_VARIABLE,),
        rows=((None, tuple(value_panels(pricing, source, metric, infra))),),
    )


def build_value_dashboard(
    name: str, pricing: TierPricingSpec, source: SourceSpec, metric: str, infra: InfraSource
) -> dict[str, Any]:
    """The cost-to-value dashboard JSON for one pricing and source."""
    return grafana(value_board(name, pricing, source, metric, infra))


def boards_of(
    name: str, pricing: TierPricingSpec, source: SourceSpec, metric: str, infra: InfraSource | None
) -> dict[str, Board]:
    """Every dashboard of a pricing and source by name suffix: usage (""), cost to value ("-value").

    The cost-to-value dashboard exists when GPU usage is collected and the pricing has
    infrastructure costs.
    """
    boards = {"": usage_board(name, pricing, source, metric)}
    if infra is not None and pricing.infrastructure is not None:
        boards["-value"] = value_board(name, pricing, source, metric, infra)
    return boards


def dashboards_of(
    name: str, pricing: TierPricingSpec, source: SourceSpec, metric: str, infra: InfraSource | None
) -> dict[str, dict[str, Any]]:
    """Every dashboard of a pricing and source as Grafana JSON, by name suffix (``boards_of``)."""
    boards = boards_of(name, pricing, source, metric, infra)
    return {suffix: grafana(board) for suffix, board in boards.items()}
