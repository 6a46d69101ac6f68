"""Grafana dashboards generated from a TierPricing and a source (grafana-foundation-sdk).

Two rows. "Usage" reads the gateway's counters live: every range total is `increase()` over
`$__range` (never a raw lifetime counter), series that may be absent are combined with `or`
(never `+`), and every tier and model override is priced from the TierPricing, so what people
see and what finance is billed cannot drift apart. "Chargeback" reads the operator's own
metrics: the billing-grade numbers of the reports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import bargauge, dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import prometheus as prometheus_models

from chargeback.api.pricing import TierPricingSpec
from chargeback.api.source import SourceSpec
from chargeback.domain.cost_queries import cost_expr, tokens_expr
from chargeback.domain.names import GRAFANA_UID, fit
from chargeback.domain.selectors import parse_selector, series_selector

DATASOURCE = common.DataSourceRef(type_val="prometheus", uid="${datasource}")


@dataclass(frozen=True)
class PanelSpec:
    """One panel: what it shows and the PromQL behind it."""

    title: str
    kind: str  # stat | timeseries | bargauge | table
    expr: str
    unit: str = "short"
    instant: bool = True
    legend: str = ""
    description: str = ""
    width: int = 6
    height: int = 6
    interval: str = ""


def usage_panels(pricing: TierPricingSpec, source: SourceSpec, metric: str) -> list[PanelSpec]:
    """The seed dashboard's panels, made range-correct and priced from the TierPricing."""
    user, tier, model = source.labels.user, source.labels.tier, source.labels.model
    money = f"currency{pricing.currency}"
    by_route = ", ".join([user, tier, model, *source.extra_labels])
    calls = f'{user}=~"$user",{tier}=~"$tier"'
    return [
        PanelSpec(
            "Tokens in range",
            "stat",
            f"sum({tokens_expr(source, metric, '$__range')})",
            description="All tokens used in the selected time range (increase over the range).",
        ),
        PanelSpec(
            "Cost in range (list prices)",
            "stat",
            f"sum({cost_expr(pricing, source, metric, user, '$__range')})",
            unit=money,
            description="Tokens priced with the TierPricing's current prices, before included "
            "tokens; the billed amounts are in the Chargeback row.",
        ),
        PanelSpec(
            "Requests in range",
            "stat",
            f"sum(increase(authorized_calls{{{calls}}}[$__range]))",
            description="Allowed requests (Limitador's authorized_calls), where exported.",
        ),
        PanelSpec(
            "Rate-limited requests in range",
            "stat",
            f"sum(increase(limited_calls{{{calls}}}[$__range]))",
            description="Requests refused by a rate or token limit (limited_calls), if exported.",
        ),
        PanelSpec(
            "Tokens by user and tier",
            "timeseries",
            f"sum by ({user}, {tier}) ({tokens_expr(source, metric, '$__interval')})",
            instant=False,
            legend=f"{{{{{user}}}}} ({{{{{tier}}}}})",
            width=12,
            height=8,
            description="Tokens per interval (not raw counters).",
        ),
        PanelSpec(
            "Top 10 users by tokens",
            "bargauge",
            f"topk(10, sum by ({user}) ({tokens_expr(source, metric, '$__range')}))",
            legend=f"{{{{{user}}}}}",
            width=12,
            height=8,
        ),
        PanelSpec(
            "Tokens per hour by user",
            "timeseries",
            f"sum by ({user}) ({tokens_expr(source, metric, '1h')})",
            instant=False,
            interval="1h",
            legend=f"{{{{{user}}}}}",
            width=12,
            height=8,
            description="Calendar hours: one point per hour, each the tokens of that hour.",
        ),
        PanelSpec(
            "Tokens by tier",
            "bargauge",
            f"sum by ({tier}) ({tokens_expr(source, metric, '$__range')})",
            legend=f"{{{{{tier}}}}}",
            width=12,
            height=8,
        ),
        PanelSpec(
            "Top 5 users by cost",
            "bargauge",
            f"topk(5, {cost_expr(pricing, source, metric, f'{user}, {tier}', '$__range')})",
            unit=money,
            legend=f"{{{{{user}}}}} ({{{{{tier}}}}})",
            width=12,
            height=8,
            description="Every tier and model override priced from the TierPricing.",
        ),
        PanelSpec(
            "Usage by user, tier, model and route",
            "table",
            f"sum by ({by_route}) ({tokens_expr(source, metric, '$__range')})",
            width=12,
            height=10,
        ),
        PanelSpec(
            "Cost by user, tier, model and route",
            "table",
            cost_expr(pricing, source, metric, by_route, "$__range"),
            unit=money,
            width=12,
            height=10,
        ),
    ]


def chargeback_panels(currency: str) -> list[PanelSpec]:
    """Billing-grade numbers from the operator's metrics (the same as the reports)."""
    report = 'report=~"$report"'
    money = f"currency{currency}"
    return [
        PanelSpec(
            "Cost of the open period",
            "stat",
            f"sum(chargeback_report_cost{{{report}}})",
            unit=money,
        ),
        PanelSpec(
            "Tokens of the open period", "stat", f"sum(chargeback_report_tokens{{{report}}})"
        ),
        PanelSpec(
            "Unpriced tokens",
            "stat",
            f"sum(chargeback_report_unpriced_tokens{{{report}}})",
            description="Usage without a price: a tier or model missing from the pricing.",
        ),
        PanelSpec("Collector lag", "stat", "max(chargeback_collector_lag_seconds)", unit="s"),
        PanelSpec(
            "Cost by team",
            "bargauge",
            f"sum by (team) (chargeback_report_cost{{{report}}})",
            unit=money,
            legend="{{team}}",
            width=8,
            height=8,
        ),
        PanelSpec(
            "Cost by tier",
            "bargauge",
            f"sum by (tier) (chargeback_report_cost{{{report}}})",
            unit=money,
            legend="{{tier}}",
            width=8,
            height=8,
        ),
        PanelSpec(
            "Cost by model",
            "bargauge",
            f"sum by (model) (chargeback_report_cost{{{report}}})",
            unit=money,
            legend="{{model}}",
            width=8,
            height=8,
        ),
        PanelSpec(
            "Tokens by token type",
            "bargauge",
            f"sum by (token_type) (chargeback_report_tokens{{{report}}})",
            description="Input (not from a cache), cached input, output; total where the "
            "counter does not tell them apart.",
            legend="{{token_type}}",
            width=12,
            height=8,
        ),
        PanelSpec(
            "Cost by token type",
            "bargauge",
            f"sum by (token_type) (chargeback_report_cost{{{report}}})",
            unit=money,
            legend="{{token_type}}",
            width=12,
            height=8,
        ),
        PanelSpec(
            "Recorded gaps",
            "timeseries",
            "max by (source) (chargeback_collector_gaps)",
            instant=False,
            legend="{{source}}",
            width=24,
            height=6,
        ),
    ]


_BUILDERS: dict[str, Any] = {
    "stat": stat.Panel,
    "timeseries": timeseries.Panel,
    "bargauge": bargauge.Panel,
    "table": table.Panel,
}


def panel(spec: PanelSpec, panel_id: int) -> Any:
    """The panel builder of ``spec``."""
    query = prometheus.Dataquery().expr(spec.expr).ref_id("A").legend_format(spec.legend)
    query = query.instant() if spec.instant else query.range()
    if spec.kind == "table":
        query = query.format(prometheus_models.PromQueryFormat.TABLE)
    panel = _BUILDERS[spec.kind]().id(panel_id).title(spec.title).datasource(DATASOURCE)
    panel = panel.with_target(query).unit(spec.unit).span(spec.width).height(spec.height)
    if spec.description:
        panel = panel.description(spec.description)
    if spec.interval:
        panel = panel.interval(spec.interval)
    return panel


@dataclass(frozen=True)
class Variable:
    """A dashboard variable: the values of ``label`` on the series of ``selector``."""

    name: str
    label: str
    selector: str

    @property
    def title(self) -> str:
        """Shown name: the plan is a Subscription on MaaS v0.2+ counters; labels read as words."""
        if self.name == "tier" and self.label == "subscription":
            return "Subscription"
        return self.name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Board:
    """A dashboard, whatever renders it (Grafana JSON here, Perses in ``domain/perses.py``)."""

    title: str
    uid: str
    tags: tuple[str, ...]
    since: str
    """The default time range: the last ``since`` (e.g. 24h)."""
    refresh: str
    variables: tuple[Variable, ...]
    rows: tuple[tuple[str | None, tuple[PanelSpec, ...]], ...]
    """Rows of panels; a row without a title is laid out without a row header."""


def variable(name: str, query: str, title: str = "") -> Any:
    """A multi-value query variable with All."""
    return (
        dashboard.QueryVariable(name)
        .label(title or name.capitalize())
        .query(query)
        .datasource(DATASOURCE)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


REPORT_VARIABLE = Variable("report", "report", "chargeback_report_tokens")


def usage_board(name: str, pricing: TierPricingSpec, source: SourceSpec, metric: str) -> Board:
    """The usage and chargeback dashboard of one pricing and one source."""
    base = series_selector(metric, parse_selector(source.selector))
    labels = source.labels
    variables = (
        Variable("user", labels.user, base), Variable("tier", labels.tier, base),
        Variable("model", labels.model, base), REPORT_VARIABLE,
        *(Variable(label, label, base) for label in source.extra_labels),
    )  # fmt: skip
    return Board(
        title=f"AI token usage and chargeback ({name})",
        uid=fit(f"chargeback-{name}", GRAFANA_UID),
        tags=("chargeback", "ai-gateway"),
        since="24h",
        refresh="5m",
        variables=variables,
        rows=(
            ("Usage (live, from the gateway's counters)",
             tuple(usage_panels(pricing, source, metric))),
            ("Chargeback (billing-grade, from the operator)",
             tuple(chargeback_panels(pricing.currency))),
        ),
    )  # fmt: skip


def grafana(board: Board) -> dict[str, Any]:
    """The Grafana dashboard JSON (classic schema) of ``board``."""
    built = (
        dashboard.Dashboard(board.title)
        .uid(board.uid)
        .tags(list(board.tags))
        .time(f"now-{board.since}", "now")
        .refresh(board.refresh)
        .timezone("browser")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
    )
    for var in board.variables:
        built = built.with_variable(
            variable(var.name, f"label_values({var.selector}, {var.label})", var.title)
        )
    panel_id = 1
    for title, panels in board.rows:
        if title is not None:
            built = built.with_row(dashboard.Row(title).id(panel_id))
            panel_id += 1
        for spec in panels:
            built = built.with_panel(panel(spec, panel_id))
            panel_id += 1
    encoded: dict[str, Any] = json.loads(json.dumps(built.build(), cls=JSONEncoder))
    return encoded


def build_dashboard(
    name: str, pricing: TierPricingSpec, source: SourceSpec, metric: str
) -> dict[str, Any]:
    """The dashboard JSON (classic schema) for one pricing and one source."""
    return grafana(usage_board(name, pricing, source, metric))


def panel_queries(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every query in a dashboard JSON."""
    return [
        (panel["title"], target["expr"])
        for panel in document["panels"]
        for target in panel.get("targets", [])
    ]
