"""UsageReport: what to report on, how to attribute it, and for which periods."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, Strict, field_validator, model_validator

from chargeback.api.base import ApiModel
from chargeback.api.budget import Budgets, BudgetStatuses
from chargeback.api.common import (
    Conditions,
    DnsLabel,
    Duration,
    Money,
    ObjectRef,
    list_map,
    unique,
)
from chargeback.api.source import LabelName, SourceSpec

TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$"


class Team(ApiModel):
    """A team and its members."""

    name: DnsLabel
    """Team name as shown in reports."""
    users: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=253)]],
        Field(max_length=5000, json_schema_extra={"x-kubernetes-list-type": "set"}),
    ]
    """Members: user label values, or usernames whose MaaS ServiceAccount name is in the label."""

    @model_validator(mode="after")
    def _unique_users(self) -> Team:
        unique(self.users, "user")
        return self


class Attribution(ApiModel):
    """How usage is attributed to teams.

    The first rule that matches wins, in this order: static teams, the team label, OpenShift
    Groups; anything else goes to `unassigned`.
    """

    teams: Annotated[list[Team], list_map("name", 500)] = []  # noqa: RUF012
    """Static team membership."""
    team_label: LabelName | None = None
    """A source label naming the team (e.g. cost_center); it must be in source.extraLabels."""
    openshift_groups: bool = False
    """Use OpenShift Groups (user.openshift.io/v1) as teams when that API exists."""
    group_prefix: Annotated[str, Field(max_length=63)] = ""
    """Only Groups whose name starts with this prefix are teams (e.g. team-)."""

    @model_validator(mode="after")
    def _unique_teams(self) -> Attribution:
        unique([t.name for t in self.teams], "team")
        return self


class FixedPeriod(ApiModel):
    """One fixed period [start, end)."""

    start: dt.datetime
    """Start of the period (inclusive)."""
    end: dt.datetime
    """End of the period (exclusive)."""

    @model_validator(mode="after")
    def _ordered(self) -> FixedPeriod:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("period.start and period.end need a time zone (e.g. a Z suffix)")
        if self.start >= self.end:
            raise ValueError("period.start must be before period.end")
        return self


class Schedule(ApiModel):
    """Recurring periods in a time zone."""

    interval: Literal["daily", "weekly", "monthly"]
    """Length of each period; weekly periods start on Monday."""
    time_zone: Annotated[str, Field(pattern=TIME_ZONE_PATTERN, max_length=64)] = "UTC"
    """IANA time zone in which periods begin at midnight (e.g. Europe/Paris)."""
    grace_period: Duration = "2h"
    """How long after a period ends late scrapes may still arrive before it is finalised."""
    keep_finalized: Annotated[int, Strict(), Field(ge=1, le=120)] = 12
    """How many finalised periods the status lists (all stay in the ledger)."""

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value


class UsageReportSpec(ApiModel):
    """A chargeback report: source, pricing, attribution and period."""

    pricing_ref: ObjectRef
    """The TierPricing that prices this report."""
    source: SourceSpec = SourceSpec()
    """Where the token counters are and how to read their labels."""
    attribution: Attribution = Attribution()
    """How users map to teams."""
    period: FixedPeriod | None = None
    """A fixed period. Exactly one of period and schedule is set."""
    schedule: Schedule | None = None
    """Recurring periods. Exactly one of period and schedule is set."""
    top_users: Annotated[int, Strict(), Field(ge=1, le=50)] = 10
    """How many top users the status lists."""
    budgets: Budgets = []  # noqa: RUF012
    """Spending limits per period that alert (status, events, metrics, alert rules)."""

    @model_validator(mode="after")
    def _consistent(self) -> UsageReportSpec:
        # The same rules as the CRD's CEL, for manifests used without a cluster.
        if (self.period is None) == (self.schedule is None):
            raise ValueError("exactly one of period or schedule must be set")
        team_label = self.attribution.team_label
        if team_label is not None and team_label not in self.source.extra_labels:
            raise ValueError("attribution.teamLabel must be listed in source.extraLabels")
        unique([b.name for b in self.budgets], "budget")
        unique([":".join(b.key) for b in self.budgets], "budget scope and match")
        return self


class Totals(ApiModel):
    """Totals of a period."""

    tokens: int = 0
    """Tokens used."""
    cost: Money = "0"
    """Cost of the priced tokens, in the pricing's currency."""
    unpriced_tokens: int = 0
    """Tokens with no price (unknown tier, or before the first price version)."""


class Breakdown(ApiModel):
    """Tokens and cost of one team, tier, model or user."""

    name: Annotated[str, Field(max_length=253)]
    """The team, tier, model or user."""
    tokens: int
    """Tokens used."""
    cost: Money
    """Cost in the pricing's currency."""


class PeriodSummary(ApiModel):
    """A finalised period, in brief."""

    start: dt.datetime
    """Start of the period."""
    end: dt.datetime
    """End of the period."""
    tokens: int
    """Tokens used."""
    cost: Money
    """Cost."""


Amount = Annotated[str, Field(max_length=40)]
"""A decimal amount that may be negative (a margin), as a string."""


class ModelValue(ApiModel):
    """Cost to value of one model over the period."""

    name: Annotated[str, Field(max_length=253)]
    """The model."""
    tokens: int
    """Tokens served."""
    revenue: Amount
    """Chargeback revenue of its tokens."""
    infrastructure_cost: Amount
    """GPU-hours priced by product plus prorated fixed costs."""
    margin: Amount
    """Revenue minus infrastructure cost."""
    gpu_hours: Amount
    """GPU-hours allocated to its serving pods."""
    idle_gpu_hours: Amount
    """GPU-hours in buckets where it served no tokens."""
    cost_per_million_tokens: Amount | None = None
    """Infrastructure cost per 1M tokens served."""
    mean_utilization: Amount | None = None
    """Mean GPU utilisation in percent (DCGM), when reported."""


class ValueTotals(ApiModel):
    """Cost to value of every model together."""

    revenue: Amount
    """Chargeback revenue."""
    infrastructure_cost: Amount
    """Infrastructure cost."""
    idle_cost: Amount
    """Cost of models that served no tokens (not charged to teams)."""
    margin: Amount
    """Revenue minus infrastructure cost."""
    gpu_hours: Amount
    """GPU-hours."""
    idle_gpu_hours: Amount
    """GPU-hours with no tokens served."""


class CostToValueSummary(ApiModel):
    """Revenue beside infrastructure cost; teams' shares are in the exports."""

    totals: ValueTotals
    """All models."""
    by_model: Annotated[list[ModelValue], Field(max_length=50)] = []  # noqa: RUF012
    """Per model (the 50 costliest)."""


class ForecastEntry(ApiModel):
    """Forecast tokens of one model in the next period."""

    name: Annotated[str, Field(max_length=253)]
    """The model (or total)."""
    tokens: int
    """Expected tokens."""
    lower: int
    """Lower end of the interval."""
    upper: int
    """Upper end of the interval."""
    gpu_hours: Amount | None = None
    """GPU-hours those tokens need at the observed tokens per GPU-hour."""


class ForecastSummary(ApiModel):
    """Usage forecast of the next period, for capacity planning."""

    start: dt.datetime
    """Start of the forecast period."""
    end: dt.datetime
    """End of the forecast period."""
    total: ForecastEntry
    """Every model together."""
    by_model: Annotated[list[ForecastEntry], Field(max_length=50)] = []  # noqa: RUF012
    """Per model (the 50 busiest); per model and tier in the exports."""


class SourceReading(ApiModel):
    """How the counter's labels are read: set by the report, or detected (zero configuration)."""

    contract: Literal["Configured", "MaaSWorkshop", "MaaSSubscriptions"]
    """Configured (source.labels or a gateway preset), MaaSWorkshop (user, tier, model) or
    MaaSSubscriptions (subscription is the plan; cost_center the team when present)."""
    message: Annotated[str, Field(max_length=512)] = ""
    """The labels found and what was chosen."""


class UsageReportStatus(ApiModel):
    """A bounded summary of the open (or fixed) period; details live in the exports."""

    observed_generation: int = 0
    """The metadata.generation last processed."""
    conditions: Conditions = []  # noqa: RUF012
    """Ready, Priced, DataComplete, SourceAvailable, CostToValue, Forecast, WithinBudget."""
    period: FixedPeriod | None = None
    """The period this summary covers."""
    currency: Annotated[str, Field(max_length=3)] = ""
    """Currency of all costs."""
    totals: Totals = Totals()
    """Totals of the period."""
    by_tier: Annotated[list[Breakdown], Field(max_length=64)] = []  # noqa: RUF012
    """Per tier."""
    by_team: Annotated[list[Breakdown], Field(max_length=50)] = []  # noqa: RUF012
    """Per team (the 50 largest; all are in the exports)."""
    by_model: Annotated[list[Breakdown], Field(max_length=50)] = []  # noqa: RUF012
    """Per model (the 50 largest; all are in the exports)."""
    by_token_type: Annotated[list[Breakdown], Field(max_length=4)] = []  # noqa: RUF012
    """Per token type: input, cached_input, output, total (total: counters without types)."""
    top_users: Annotated[list[Breakdown], Field(max_length=50)] = []  # noqa: RUF012
    """The top users by cost."""
    finalized: Annotated[list[PeriodSummary], Field(max_length=120)] = []  # noqa: RUF012
    """The most recent finalised periods."""
    cost_to_value: CostToValueSummary | None = None
    """Revenue against infrastructure cost; unset when unavailable (see CostToValue)."""
    forecast: ForecastSummary | None = None
    """Next period's usage forecast; unset when unavailable (see Forecast condition)."""
    budgets: BudgetStatuses = []  # noqa: RUF012
    """Where each budget stands in the period shown (see WithinBudget)."""
    source: SourceReading | None = None
    """How the counter's labels are read (the contract detected when source.labels is unset)."""
    exports: Annotated[list[Annotated[str, Field(max_length=253)]], Field(max_length=64)] = []  # noqa: RUF012
    """ConfigMaps holding the full document (JSON and CSV) of the period shown."""
    last_refresh_time: dt.datetime | None = None
    """When the summary last changed (a refresh that finds the same numbers writes nothing)."""
