"""Prometheus alerting rules of a report's budgets, on the operator's budget metrics.

One rule per budget and threshold (spent >= threshold % of the amount) and one per budget for
the projection (projected > amount while spent < amount). Each carries the report, the budget,
the threshold, a severity, the scope's value under the scope's name (``team: research``) and a
runbook in its annotations. The same groups serve a PrometheusRule's spec and a rule file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chargeback.api.budget import Budget

SPENT, AMOUNT, PROJECTED = (
    "chargeback_budget_spent",
    "chargeback_budget_amount",
    "chargeback_budget_projected",
)
THRESHOLD_ALERT = "ChargebackBudgetThreshold"
PROJECTION_ALERT = "ChargebackBudgetProjectedOverrun"

THRESHOLD_RUNBOOK = (
    "Spending counted against this budget reached the threshold in the report's current period. "
    "Budgets alert only: traffic is never blocked. Check who spends (kubectl get usagereport "
    "{report} -n {namespace} -o yaml: status.topUsers, status.byModel), then agree with the "
    "budget owner to raise spec.budgets[].amount, move usage to a cheaper model or tier, or "
    "limit it at the gateway (rate limits per tier or subscription). The alert resolves when "
    "the next period starts or the amount is raised."
)
PROJECTION_RUNBOOK = (
    "At the period's run rate so far, spending passes the budget before the period ends "
    "(status.budgets[].exceedsAt says when). Budgets alert only: traffic is never blocked. "
    "Act before the amount is reached: look at status.topUsers and status.byModel of "
    "UsageReport {namespace}/{report}, and raise the amount or slow usage down."
)


def _selector(namespace: str, report: str, budget: str) -> str:
    return f'{{namespace="{_quoted(namespace)}",report="{_quoted(report)}",budget="{budget}"}}'


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _literal(text: str) -> str:
    """``text`` as it reads after Prometheus expands templates in label values."""
    return text.replace("{{", '{{ "{{" }}')


def _labels(budget: Budget) -> dict[str, str]:
    labels = {"budget": budget.name, "scope": budget.scope}
    if budget.match is not None:
        labels[budget.scope] = _literal(budget.match)
    return labels


def budget_rules(namespace: str, report: str, budgets: Sequence[Budget]) -> dict[str, Any]:
    """The rule groups (``{"groups": [...]}``) of a report's budgets; no groups without any."""
    rules: list[dict[str, Any]] = []
    for budget in budgets:
        selector = _selector(namespace, report, budget.name)
        labels = _labels(budget)
        for threshold in sorted(budget.thresholds):
            rules.append({
                "alert": THRESHOLD_ALERT,
                "expr": f"{SPENT}{selector} >= {AMOUNT}{selector} * {threshold} / 100",
                "labels": {**labels, "threshold": str(threshold),
                           "severity": "critical" if threshold >= 100 else "warning"},
                "annotations": {
                    "summary": f"Budget {budget.name} of UsageReport {namespace}/{report} "
                               f"reached {threshold}% of its amount",
                    "description": "{{ $value }} spent is at least " + f"{threshold}% of the "
                                   "amount in the current period.",
                    "runbook": THRESHOLD_RUNBOOK.format(namespace=namespace, report=report),
                },
            })  # fmt: skip
        if budget.projection:
            rules.append({
                "alert": PROJECTION_ALERT,
                "expr": f"{PROJECTED}{selector} > {AMOUNT}{selector} "
                        f"and {SPENT}{selector} < {AMOUNT}{selector}",
                "labels": {**labels, "severity": "warning"},
                "annotations": {
                    "summary": f"Budget {budget.name} of UsageReport {namespace}/{report} is "
                               "projected to be exceeded before the period ends",
                    "description": "{{ $value }} projected at the period's end at the run rate.",
                    "runbook": PROJECTION_RUNBOOK.format(namespace=namespace, report=report),
                },
            })  # fmt: skip
    if not rules:
        return {"groups": []}
    return {"groups": [{"name": f"chargeback-budgets.{namespace}.{report}", "rules": rules}]}
