"""The operator's own metrics (prometheus-client): report results, prices, collector health."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()
REPORT_LABELS = ("namespace", "report", "team", "tier", "model", "token_type")

report_tokens = Gauge(
    "chargeback_report_tokens", "Tokens in the report's open period.", REPORT_LABELS,
    registry=REGISTRY,
)  # fmt: skip
report_cost = Gauge(
    "chargeback_report_cost", "Cost in the report's open period, in its currency.",
    [*REPORT_LABELS, "currency"], registry=REGISTRY,
)  # fmt: skip
report_unpriced = Gauge(
    "chargeback_report_unpriced_tokens", "Tokens without a price in the open period.",
    ["namespace", "report"], registry=REGISTRY,
)  # fmt: skip
model_infra_cost = Gauge(
    "chargeback_model_infrastructure_cost", "Infrastructure cost of a model in the open period.",
    ["namespace", "report", "model", "currency"], registry=REGISTRY,
)  # fmt: skip
model_gpu_hours = Gauge(
    "chargeback_model_gpu_hours", "GPU-hours allocated to a model in the open period.",
    ["namespace", "report", "model"], registry=REGISTRY,
)  # fmt: skip
forecast_tokens = Gauge(
    "chargeback_forecast_tokens", "Forecast tokens of a model in the next period.",
    ["namespace", "report", "model", "bound"], registry=REGISTRY,
)  # fmt: skip
BUDGET_LABELS = ("namespace", "report", "budget", "scope", "match", "currency")
budget_amount = Gauge(
    "chargeback_budget_amount", "A budget's amount per period, in the report's currency.",
    BUDGET_LABELS, registry=REGISTRY,
)  # fmt: skip
budget_spent = Gauge(
    "chargeback_budget_spent", "Spent against a budget in the report's open period.",
    BUDGET_LABELS, registry=REGISTRY,
)  # fmt: skip
budget_projected = Gauge(
    "chargeback_budget_projected",
    "Spending projected at the period's end at its run rate (absent early in a period).",
    BUDGET_LABELS, registry=REGISTRY,
)  # fmt: skip
tier_price = Gauge(
    "chargeback_tier_price", "Price per unit of tokens of the version in force.",
    ["pricing", "tier", "model", "token_type", "currency"], registry=REGISTRY,
)  # fmt: skip
watermark = Gauge(
    "chargeback_collector_watermark_seconds", "Usage is collected up to this time.",
    ["source"], registry=REGISTRY,
)  # fmt: skip
lag = Gauge(
    "chargeback_collector_lag_seconds", "How far collection is behind now.", ["source"],
    registry=REGISTRY,
)  # fmt: skip
gaps = Gauge(
    "chargeback_collector_gaps", "Recorded gaps (ranges Prometheus no longer holds).", ["source"],
    registry=REGISTRY,
)  # fmt: skip
reconciles = Counter(
    "chargeback_reconciles", "Reconciliations by kind and result.", ["kind", "result"],
    registry=REGISTRY,
)  # fmt: skip
reconcile_seconds = Histogram(
    "chargeback_reconcile_duration_seconds", "Duration of reconciliations.", ["kind"],
    registry=REGISTRY,
)  # fmt: skip


REPORT_GAUGES = (report_tokens, report_cost, report_unpriced, model_infra_cost, model_gpu_hours,
                 forecast_tokens, budget_amount, budget_spent, budget_projected)  # fmt: skip
"""Gauges whose first two labels are a report's namespace and name."""


def forget_report(
    namespace: str, report: str, keep: frozenset[tuple[int, tuple[str, ...]]] = frozenset()
) -> None:
    """Drop a report's series but those in ``keep`` ((gauge index, labels)).

    With nothing kept: all of a deleted report's (prometheus-client has no remove-by-prefix).
    """
    for index, gauge in enumerate(REPORT_GAUGES):
        for labels in list(gauge._metrics):  # the registry's own view of its label sets
            if labels[:2] == (namespace, report) and (index, labels) not in keep:
                gauge.remove(*labels)


class ReportSeries:
    """Sets a report's series, then drops those it did not set.

    A scrape in between sees the previous numbers, never none (an alert on them would resolve
    and fire again).
    """

    def __init__(self, namespace: str, report: str) -> None:
        self.namespace, self.report = namespace, report
        self._set: set[tuple[int, tuple[str, ...]]] = set()

    def set(self, gauge: Gauge, labels: tuple[str, ...], value: float) -> None:
        """Set one series of ``gauge`` (labels after the namespace and report)."""
        full = (self.namespace, self.report, *labels)
        gauge.labels(*full).set(value)
        self._set.add((REPORT_GAUGES.index(gauge), full))

    def prune(self) -> None:
        """Drop the report's series not set since this object was made."""
        forget_report(self.namespace, self.report, frozenset(self._set))
