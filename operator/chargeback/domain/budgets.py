"""Budgets: spending against an amount per period, thresholds crossed, run-rate projections.

Pure functions of a report document, the time its data reaches, and what was already announced
in this period (read back from the status, so a restarted operator neither repeats an event nor
loses one). Spending is the sum of the document's rounded line costs in the budget's scope, so a
report-wide budget spends exactly the report's total.

The projection is the period's run rate: spent / elapsed x the period's length. It is given once
a twentieth of the period (and at least an hour) has data, as a few minutes of traffic say
little about a month.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from chargeback.api.budget import Budget, BudgetState
from chargeback.domain.buckets import HOUR_MS
from chargeback.domain.money import round_money
from chargeback.domain.reports import ReportDocument

MIN_ELAPSED_FRACTION = 20
"""A projection needs 1/20 of the period elapsed (and at least MIN_ELAPSED_MS)."""
MIN_ELAPSED_MS = HOUR_MS
MAX_PERCENT = Decimal("999999999")
"""Percentages are capped here (a status field is bounded; a tiny amount and a large spend)."""


@dataclass(frozen=True)
class Announced:
    """What was already announced for a budget in the period shown: thresholds, projection."""

    crossed: frozenset[int] = frozenset()
    projected_overrun: bool = False


@dataclass(frozen=True)
class Reading:
    """Where one budget stands, and what is new since the last reading of this period."""

    budget: Budget
    amount: Decimal
    spent: Decimal
    projected: Decimal | None
    exceeds_at_ms: int | None
    crossed: tuple[int, ...]
    """Thresholds reached now (a threshold passed again after the amount was raised is new)."""
    overrun: bool
    """The projection passes the amount now, before spending does."""
    projection_announced: bool
    """The overrun was announced in this period (once per period: projections waver)."""
    new_crossings: tuple[int, ...]
    new_projection: bool

    @property
    def remaining(self) -> Decimal:
        """Amount minus spent, never below zero."""
        return max(self.amount - self.spent, Decimal(0))

    @property
    def percent(self) -> Decimal:
        """Spent as a percentage of the amount, rounded down to 0.1 (at most MAX_PERCENT)."""
        exact = min(self.spent * 100 / self.amount, MAX_PERCENT)
        return exact.quantize(Decimal("0.1"), rounding=ROUND_DOWN)

    @property
    def state(self) -> BudgetState:
        """The state: exceeded (spent >= amount), warning (a threshold or projection passed), ok."""
        if self.spent >= self.amount:
            return "exceeded"
        return "warning" if self.crossed or self.overrun else "ok"

    @property
    def what(self) -> str:
        """The budget and its scope, readably: ``budget gpu (team research)``."""
        scope = self.budget.scope
        where = "the whole report" if scope == "report" else f"{scope} {self.budget.match}"
        return f"budget {self.budget.name} ({where})"


def spent_in_scope(document: ReportDocument, budget: Budget) -> Decimal:
    """The document's cost in the budget's scope (sum of rounded line costs)."""
    if budget.scope == "report":
        return document.cost
    return sum(
        (line.cost for line in document.lines if getattr(line, budget.scope) == budget.match),
        Decimal(0),
    )


def run_rate(spent: Decimal, start_ms: int, end_ms: int, through_ms: int) -> Decimal | None:
    """Spending at ``end_ms`` at the rate since ``start_ms``, or None when too early to say."""
    elapsed = min(through_ms, end_ms) - start_ms
    if elapsed >= end_ms - start_ms:
        return spent
    if elapsed < max(MIN_ELAPSED_MS, (end_ms - start_ms) // MIN_ELAPSED_FRACTION):
        return None
    return spent * (end_ms - start_ms) / elapsed


def read(
    budgets: Sequence[Budget],
    document: ReportDocument,
    announced: Mapping[str, Announced],
) -> list[Reading]:
    """Every budget's reading of ``document``; ``announced``: by budget name, this period's."""
    period, currency = document.period, document.currency
    through = document.data_through_ms
    readings = []
    for budget in budgets:
        amount, spent = Decimal(budget.amount), spent_in_scope(document, budget)
        projected = run_rate(spent, period.start_ms, period.end_ms, through)
        exceeds_at = None
        overrun = projected is not None and projected > amount and spent < amount
        if overrun and spent > 0:
            elapsed = min(through, period.end_ms) - period.start_ms
            exceeds_at = period.start_ms + int(elapsed * amount / spent)
        crossed = _crossed(budget.thresholds, spent, amount)
        before = announced.get(budget.name, Announced())
        wanted = overrun and budget.projection
        readings.append(Reading(
            budget=budget, amount=amount, spent=spent,
            projected=None if projected is None else round_money(projected, currency),
            exceeds_at_ms=exceeds_at,
            crossed=tuple(crossed), overrun=overrun,
            projection_announced=before.projected_overrun or wanted,
            new_crossings=tuple(t for t in crossed if t not in before.crossed),
            new_projection=wanted and not before.projected_overrun,
        ))  # fmt: skip
    return readings


def _crossed(thresholds: Collection[int], spent: Decimal, amount: Decimal) -> list[int]:
    return sorted(t for t in thresholds if spent * 100 >= amount * t)


def announced_in(status: Mapping[str, object], period_start: dt.datetime) -> dict[str, Announced]:
    """What the stored status says was announced, if it shows the same period (else nothing)."""
    period = status.get("period")
    if not isinstance(period, Mapping) or _instant(period.get("start")) != period_start:
        return {}
    entries = status.get("budgets")
    found: dict[str, Announced] = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            crossed = entry.get("crossed") or []
            found[str(entry["name"])] = Announced(
                frozenset(t for t in crossed if isinstance(t, int)),
                entry.get("projectedOverrun") is True,
            )
    return found


def _instant(value: object) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
