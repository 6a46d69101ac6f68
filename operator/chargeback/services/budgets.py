"""A report's budgets: status entries, the WithinBudget condition, crossing events, rules.

Events are posted once per crossing per period: what was announced is kept in the status
(``crossed``, ``projectedOverrun``), which the next reconciliation (or a restarted operator)
reads back, so a refresh that finds the same numbers says nothing again, and a crossing that
happened while the operator was down is announced when it comes back.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chargeback.adapters.alert_rules import AlertRulesError, apply_rules
from chargeback.adapters.exports import Owner
from chargeback.api.budget import Budget, BudgetStatus
from chargeback.domain.alerts import budget_rules
from chargeback.domain.budgets import Reading, announced_in, read
from chargeback.domain.conditions import Cond, Reason, Type
from chargeback.domain.money import format_money
from chargeback.domain.reports import ReportDocument, iso
from chargeback.services.outcome import Event
from chargeback.services.status import bounded

log = logging.getLogger(__name__)


def readings(
    budgets: Sequence[Budget],
    document: ReportDocument,
    stored: Mapping[str, Any],
) -> list[Reading]:
    """Every budget's reading of ``document``; ``stored``: the status as the API server has it."""
    start = dt.datetime.fromtimestamp(document.period.start_ms / 1000, dt.UTC)
    return read(budgets, document, announced_in(stored, start))


def statuses(found: Sequence[Reading], currency: str) -> list[BudgetStatus]:
    """The status entries of the readings."""
    return [
        BudgetStatus(
            name=r.budget.name, scope=r.budget.scope,
            match=None if r.budget.match is None else bounded(r.budget.match),
            amount=format_money(r.amount, currency), spent=format_money(r.spent, currency),
            remaining=format_money(r.remaining, currency), percent=str(r.percent),
            projected=None if r.projected is None else format_money(r.projected, currency),
            projection_method=None if r.projected is None else "RunRate",
            exceeds_at=None if r.exceeds_at_ms is None else _instant(r.exceeds_at_ms),
            state=r.state, crossed=list(r.crossed), projected_overrun=r.projection_announced,
        )
        for r in found
    ]  # fmt: skip


def condition(found: Sequence[Reading], currency: str) -> Cond:
    """WithinBudget: False once any budget is exceeded; True otherwise, with the worst news."""
    exceeded = [r for r in found if r.state == "exceeded"]
    if exceeded:
        return Cond(Type.WITHIN_BUDGET, False, Reason.BUDGET_EXCEEDED,
                    _list(exceeded, currency))  # fmt: skip
    overrun = [r for r in found if r.overrun]
    if overrun:
        return Cond(Type.WITHIN_BUDGET, True, Reason.PROJECTED_TO_EXCEED, _list(overrun, currency))
    warned = [r for r in found if r.crossed]
    if warned:
        return Cond(Type.WITHIN_BUDGET, True, Reason.THRESHOLD_CROSSED, _list(warned, currency))
    return Cond(Type.WITHIN_BUDGET, True, Reason.UNDER_BUDGET,
                f"{len(found)} budgets under their thresholds")  # fmt: skip


def _list(found: Sequence[Reading], currency: str) -> str:
    return "; ".join(f"{r.what}: {_spent(r, currency)}" for r in found)


def _spent(reading: Reading, currency: str) -> str:
    spent, amount = format_money(reading.spent, currency), format_money(reading.amount, currency)
    return f"{spent} of {amount} {currency} spent ({reading.percent}%)"


def events(found: Sequence[Reading], currency: str) -> list[Event]:
    """One event per new crossing (thresholds, then the projection)."""
    posted = []
    for r in found:
        for threshold in r.new_crossings:
            reason = Reason.BUDGET_EXCEEDED if threshold >= 100 else Reason.BUDGET_THRESHOLD
            posted.append(Event(True, reason, f"{r.what} reached {threshold}%: "
                                f"{_spent(r, currency)}", deduplicate=False))  # fmt: skip
        if r.new_projection and r.projected is not None:
            when = "" if r.exceeds_at_ms is None else f", around {iso(r.exceeds_at_ms)}"
            projected = format_money(r.projected, currency)
            message = (f"{r.what} is projected to pass {format_money(r.amount, currency)} "
                       f"{currency} before the period ends{when}: {projected} {currency} at the "
                       f"run rate so far ({_spent(r, currency)})")  # fmt: skip
            posted.append(Event(True, Reason.PROJECTED_TO_EXCEED, message, deduplicate=False))
    return posted


RULES_RECHECK_MS = 10 * 60_000
"""A report's PrometheusRule is rewritten when its budgets change, and checked this often."""


class RulesWriter:
    """Writes each report's PrometheusRule when its budgets change (and every 10 minutes)."""

    def __init__(self, api: Any, clock: Callable[[], int]) -> None:
        self.api = api
        self.clock = clock
        self._written: dict[str, tuple[str, int]] = {}

    def write(self, owner: Owner, budgets: Sequence[Budget]) -> list[Event]:
        """Events of a failure to write (none when written or unchanged)."""
        key = f"{owner.namespace}/{owner.name}"
        digest = json.dumps([b.model_dump(mode="json") for b in budgets], sort_keys=True)
        stamp = (digest, self.clock() // RULES_RECHECK_MS)
        if self._written.get(key) == stamp:
            return []
        events = provision_rules(self.api, owner, budgets)
        if not events:
            self._written[key] = stamp
        return events


def provision_rules(api: Any, owner: Owner, budgets: Sequence[Budget]) -> list[Event]:
    """The report's PrometheusRule where that API exists; a failure costs the rules only."""
    groups = budget_rules(owner.namespace, owner.name, budgets)["groups"]
    try:
        apply_rules(api, owner, groups)
    except AlertRulesError as exc:
        log.warning("Could not write the alert rules of UsageReport %s/%s: %s",
                    owner.namespace, owner.name, exc)  # fmt: skip
        return [Event(True, Reason.ALERT_RULES_NOT_PROVISIONED, str(exc))]
    return []


def _instant(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms // 1000, dt.UTC)
