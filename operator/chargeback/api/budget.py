"""Budgets of a UsageReport: an amount per period for the report or one team, tier, user or model.

A budget alerts (status, events, metrics, alert rules); it never blocks traffic.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, Strict, model_validator

from chargeback.api.base import ApiModel
from chargeback.api.common import DecimalString, DnsLabel, Money

BudgetScope = Literal["report", "team", "tier", "user", "model"]
"""What a budget limits: the whole report, or the usage of one team, tier (plan), user or model."""

Threshold = Annotated[int, Strict(), Field(ge=1, le=1000)]
"""A percentage of the amount."""


class Budget(ApiModel):
    """An amount per period of the report (each period starts from zero), with thresholds."""

    name: DnsLabel
    """Name of the budget, unique in the report (alerts and metrics carry it)."""
    amount: DecimalString
    """The amount per period, in the pricing's currency (e.g. "500.00"); more than zero."""
    scope: BudgetScope = "report"
    """What is counted: report (all usage of the report), team, tier, user or model."""
    match: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    """The team, tier, user or model counted (required unless scope is report)."""
    thresholds: Annotated[
        list[Threshold],
        Field(min_length=1, max_length=10, json_schema_extra={"x-kubernetes-list-type": "set"}),
    ] = [50, 80, 100]  # noqa: RUF012
    """Percentages of the amount that raise an event and an alert when spending reaches them."""
    projection: bool = True
    """Alert when spending at the period's run rate would pass the amount before the period ends."""

    @model_validator(mode="after")
    def _consistent(self) -> Budget:
        # The same rules as the CRD's CEL, for manifests used without a cluster.
        if Decimal(self.amount) <= 0:
            raise ValueError("amount must be more than zero")
        if (self.scope == "report") != (self.match is None):
            raise ValueError("match names the team, tier, user or model of the scope; "
                             "a budget of the whole report (scope report) has none")  # fmt: skip
        if len(set(self.thresholds)) != len(self.thresholds):
            raise ValueError("thresholds must not repeat")
        return self

    @property
    def key(self) -> tuple[str, str]:
        """What the budget counts: (scope, match)."""
        return self.scope, self.match or ""


BudgetState = Literal["ok", "warning", "exceeded"]


class BudgetStatus(ApiModel):
    """Where one budget stands in the period shown."""

    name: DnsLabel
    """The budget."""
    scope: BudgetScope
    """What it counts."""
    match: Annotated[str, Field(max_length=253)] | None = None
    """The team, tier, user or model counted."""
    amount: Money
    """The amount per period."""
    spent: Money
    """Cost counted against it so far in the period."""
    remaining: Money
    """Amount minus spent (zero once exceeded)."""
    percent: Annotated[str, Field(max_length=40)]
    """Spent as a percentage of the amount, rounded down to 0.1."""
    projected: Money | None = None
    """Spending at period end at the period's run rate so far; unset early in a period."""
    projection_method: (
        Annotated[Literal["RunRate"], Field(json_schema_extra={"enum": ["RunRate"]})] | None
    ) = None
    """How projected was computed: RunRate (spent / elapsed x period length)."""
    exceeds_at: dt.datetime | None = None
    """When the run rate reaches the amount, if that is before the period ends."""
    state: BudgetState
    """ok; warning (a threshold or the projection passed); exceeded (spent >= amount)."""
    crossed: Annotated[
        list[Threshold], Field(max_length=10, json_schema_extra={"x-kubernetes-list-type": "set"})
    ] = []  # noqa: RUF012
    """Thresholds reached in this period (an event was posted for each)."""
    projected_overrun: bool = False
    """The projection passed the amount in this period (an event was posted once)."""


Budgets = Annotated[list[Budget], Field(max_length=20, json_schema_extra={
    "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]})]  # fmt: skip
"""A report's budgets, keyed by name."""

BudgetStatuses = Annotated[list[BudgetStatus], Field(max_length=20)]
"""Where each budget stands."""

BUDGET_LIST_RULES: list[dict[str, str]] = [
    {
        "rule": "!has(self.budgets) || self.budgets.all(b, self.budgets.filter(c, "
        "c.scope == b.scope && (has(c.match) ? c.match : '') == "
        "(has(b.match) ? b.match : '')).size() == 1)",
        "message": "two budgets count the same scope and match: give one budget several "
        "thresholds instead",
        "fieldPath": ".budgets",
    },
]
BUDGET_RULES: list[dict[str, str]] = [
    {
        "rule": "(self.scope == 'report') == !has(self.match)",
        "message": "match names the team, tier, user or model of the scope; a budget of the "
        "whole report (scope report) has none",
        "fieldPath": ".match",
    },
    {
        "rule": "!self.amount.matches('^0(\\\\.0+)?$')",
        "message": "amount must be more than zero",
        "fieldPath": ".amount",
    },
]
