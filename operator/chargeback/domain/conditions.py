"""Kubernetes-style conditions, computed whole in one place.

`lastTransitionTime` moves only when a condition's status flips; `Ready` summarises the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Type(StrEnum):
    """Condition types of TierPricing and UsageReport (docs/operations.md explains each)."""

    READY = "Ready"
    SOURCE_AVAILABLE = "SourceAvailable"
    DATA_COMPLETE = "DataComplete"
    PRICED = "Priced"
    COST_TO_VALUE = "CostToValue"
    FORECAST = "Forecast"
    AUTHORIZED = "Authorized"
    WITHIN_BUDGET = "WithinBudget"
    PRICES_IMPORTED = "PricesImported"


class Reason(StrEnum):
    """Condition (and event) reasons: CamelCase, as the CRD's schema requires."""

    RECONCILED = "Reconciled"
    VERSION_RECORDED = "VersionRecorded"
    INVALID_SPEC = "InvalidSpec"
    INVALID_SELECTOR = "InvalidSelector"
    PRICING_NOT_FOUND = "PricingNotFound"
    PRICING_INVALID = "PricingInvalid"
    PRICING_DELETED = "PricingDeleted"
    RECONCILE_FAILED = "ReconcileFailed"
    LEDGER_UNAVAILABLE = "LedgerUnavailable"
    PROMETHEUS_ERROR = "PrometheusError"
    COLLECTION_FAILED = "CollectionFailed"
    COLLECTED = "Collected"
    NO_GAPS = "NoGaps"
    GAPS_RECORDED = "GapsRecorded"
    ALL_USAGE_PRICED = "AllUsagePriced"
    UNPRICED_USAGE = "UnpricedUsage"
    COMPUTED = "Computed"
    UNAVAILABLE = "Unavailable"
    GRANTED = "Granted"
    VALID = "Valid"
    NO_SCOPE = "NoScope"
    SCOPE_CONFLICT = "ScopeConflict"
    SOURCE_NOT_ALLOWED = "SourceNotAllowed"
    INVALID_SCOPE = "InvalidScope"
    UNDER_BUDGET = "UnderBudget"
    THRESHOLD_CROSSED = "ThresholdCrossed"
    PROJECTED_TO_EXCEED = "ProjectedToExceed"
    BUDGET_EXCEEDED = "BudgetExceeded"
    IMPORTED = "Imported"
    SOME_RATES_INVALID = "SomeRatesInvalid"
    NOT_INSTALLED = "NotInstalled"
    # Reasons of events only
    SOURCE_UNAVAILABLE = "SourceUnavailable"
    FINALIZED = "Finalized"
    DASHBOARD_NOT_PROVISIONED = "DashboardNotProvisioned"
    BUDGET_THRESHOLD = "BudgetThresholdReached"
    ALERT_RULES_NOT_PROVISIONED = "AlertRulesNotProvisioned"


@dataclass(frozen=True)
class Cond:
    """A condition as computed now (without times)."""

    type: Type
    status: bool | None
    reason: Reason
    message: str = ""

    @property
    def status_text(self) -> str:
        """True, False or Unknown."""
        return {True: "True", False: "False", None: "Unknown"}[self.status]


def merge(
    previous: Sequence[Mapping[str, Any]], current: Sequence[Cond], now_iso: str, generation: int
) -> list[dict[str, Any]]:
    """The full conditions list: times kept where a status did not change."""
    before = {c.get("type"): c for c in previous}
    merged = []
    for cond in current:
        old = before.get(cond.type)
        changed = old is None or old.get("status") != cond.status_text
        merged.append({
            "type": str(cond.type),
            "status": cond.status_text,
            "reason": str(cond.reason),
            "message": cond.message[:2048],
            "lastTransitionTime": now_iso if changed else old["lastTransitionTime"],  # type: ignore[index]
            "observedGeneration": generation,
        })  # fmt: skip
    return merged


def ready(others: Sequence[Cond], blocking: Sequence[Type]) -> Cond:
    """Ready is False with the first failing blocking condition's reason, else True."""
    for cond in others:
        if cond.type in blocking and cond.status is not True:
            return Cond(Type.READY, False, cond.reason, cond.message)
    return Cond(Type.READY, True, Reason.RECONCILED, "")


VOLATILE = frozenset({"lastRefreshTime"})
"""Status fields that alone never justify a write (they would change on every refresh)."""


def status_changes(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The status to write: ``desired`` when anything but a volatile field differs, else nothing.

    A refresh that finds the same numbers writes no status (Kubernetes API conventions; each
    write wakes every watcher of the object). A field set to None is absent in ``current``.
    """
    differs = any(
        current.get(key) != value for key, value in desired.items() if key not in VOLATILE
    )
    return dict(desired) if differs else {}
