"""Which gateway contract a counter speaks, and the source mapping that reads it correctly.

Two eras of Models-as-a-Service label the same counter (``authorized_hits``) differently:

- the **workshop** contract (2025): ``user``, ``tier``, ``model``;
- **subscriptions** (MaaS v0.2+, OpenShift AI 3.4/3.5): ``subscription`` (the plan prices are
  looked up by), ``model``, ``cost_center`` and ``organization_id`` when set on the subscription,
  and ``user`` only when the tenant captures it (off by default, for privacy).

A report that does not map the labels itself (no ``source.labels``) is read as the counter says:
the plan is ``tier`` if the series carry it, else ``subscription``; ``cost_center`` is kept and is
the team when the report attributes no other way; ``organization_id`` is kept as a dimension. A
missing ``user`` label gives usage per subscription (user empty), never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from chargeback.api.report import UsageReportSpec
from chargeback.api.source import LabelMapping

PROBED = ("tier", "subscription", "user", "cost_center", "organization_id")
"""Labels whose presence tells the contracts apart."""
MAX_EXTRA_LABELS = 8


class Contract(StrEnum):
    """How a report's counter is read."""

    CONFIGURED = "Configured"
    """The report maps the labels itself (``source.labels``): nothing is detected."""
    WORKSHOP = "MaaSWorkshop"
    """``user``, ``tier``, ``model``."""
    SUBSCRIPTIONS = "MaaSSubscriptions"
    """``subscription`` is the plan; ``cost_center`` and ``organization_id`` when present."""


@dataclass(frozen=True)
class Detected:
    """The contract found and the labels the counter carries."""

    contract: Contract
    present: frozenset[str] = frozenset()
    preset: str | None = None
    """The source's preset, when it has one (its fields are then configured)."""

    @property
    def message(self) -> str:
        """What was chosen, readably (for the report's status)."""
        if self.contract is Contract.CONFIGURED:
            return f"preset {self.preset}" if self.preset else "source.labels set by the report"
        shown = ", ".join(label for label in PROBED if label in self.present) or "none"
        if self.contract is Contract.WORKSHOP:
            return f"labels found: {shown}; plan from tier"
        user = "per user" if "user" in self.present else "per subscription (no user label)"
        return f"labels found: {shown}; plan from subscription, usage {user}"


def configured(spec: UsageReportSpec) -> bool:
    """Whether the report maps the counter's labels itself."""
    return "labels" in spec.source.model_fields_set


def detect(present: frozenset[str]) -> Contract:
    """The contract of a counter whose series carry the ``present`` labels."""
    if "tier" not in present and "subscription" in present:
        return Contract.SUBSCRIPTIONS
    return Contract.WORKSHOP


def apply(spec: UsageReportSpec, found: Detected) -> UsageReportSpec:
    """The spec that reads the counter as ``found`` says (unchanged unless subscriptions)."""
    if found.contract is not Contract.SUBSCRIPTIONS:
        return spec
    source = spec.source
    extra = list(source.extra_labels)
    for label in ("cost_center", "organization_id"):
        if label in found.present and label not in extra and len(extra) < MAX_EXTRA_LABELS:
            extra.append(label)
    labels = LabelMapping(user=source.labels.user, tier="subscription", model=source.labels.model)
    source = source.model_copy(update={"labels": labels, "extra_labels": tuple(extra)})
    attribution = spec.attribution
    attributes = attribution.teams or attribution.team_label or attribution.openshift_groups
    if not attributes and "cost_center" in extra:
        attribution = attribution.model_copy(update={"team_label": "cost_center"})
    return spec.model_copy(update={"source": source, "attribution": attribution})
