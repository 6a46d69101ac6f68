"""MaaSSubscription objects (``maas.opendatahub.io``): their prices and their teams.

MaaS administrators write a per-token rate on each model of a subscription
(``spec.modelRefs[].billingRate.perToken``, a decimal string); MaaS itself computes nothing from
it. A TierPricing that opts in (``spec.maasSubscriptions``) takes these rates as prices:

- the subscription's name is the plan (a tier of that name; the counters' ``subscription`` label);
- each model's rate becomes a model price of that tier: ``perToken x tokensPerUnit``;
- what the TierPricing says itself wins: a tier's own prices stay, and a model it lists keeps
  its entry; imported models are added beside them;
- a rate that is not a plain non-negative decimal ("abc", "-1", "1e-3"), or too precise for the
  TierPricing's unit, is left out and named in the status; the other rates still apply.

The merged spec is what gets versioned: a rate changed in a MaaSSubscription is a new price
version from the moment the operator sees it.

A subscription also names who pays: ``spec.tokenMetadata.costCenter`` (else ``organizationId``,
else its first owner group) is the team of its usage when the counter has no cost centre.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from chargeback.api.common import DECIMAL_PATTERN, NAME_PATTERN
from chargeback.api.pricing import MODEL_PATTERN, ModelPrice, TierPrice, TierPricingSpec

GROUP, VERSION, PLURAL = "maas.opendatahub.io", "v1alpha1", "maassubscriptions"
RATE = re.compile(r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,24})?$")
"""A per-token rate: a plain non-negative decimal (no sign, no exponent)."""


@dataclass
class Imported:
    """Rates read from the subscriptions: tier -> model -> price per unit, and what was left out."""

    prices: dict[str, dict[str, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many (subscription, model) prices were taken."""
        return sum(len(models) for models in self.prices.values())


def read_rates(subscriptions: Iterable[Mapping[str, Any]], tokens_per_unit: int) -> Imported:
    """The prices of ``subscriptions`` (MaaSSubscription objects), per ``tokens_per_unit``."""
    imported = Imported()
    owners: dict[str, str] = {}
    ordered = sorted(subscriptions, key=lambda s: (_meta(s, "namespace"), _meta(s, "name")))
    for subscription in ordered:
        name, where = _meta(subscription, "name"), _meta(subscription, "namespace")
        label = f"MaaSSubscription {where}/{name}"
        if not re.match(NAME_PATTERN, name) or len(name) > 63:
            imported.problems.append(f"{label}: its name is not a tier name (a DNS label)")
            continue
        if name in owners:
            imported.problems.append(f"{label}: {owners[name]} has the same name; its rates apply")
            continue
        owners[name] = label
        spec = subscription.get("spec") or {}
        for ref in spec.get("modelRefs") or []:
            model = str(ref.get("name") or "")
            rate = (ref.get("billingRate") or {}).get("perToken")
            if rate is None:
                continue
            price = _price(str(rate), tokens_per_unit)
            if not re.match(MODEL_PATTERN, model) or len(model) > 253:
                imported.problems.append(f"{label}: model name {model!r} is not valid")
            elif price is None:
                imported.problems.append(
                    f"{label} model {model}: billingRate.perToken {rate!r} is not a plain "
                    f"non-negative decimal with at most 12 decimals per {tokens_per_unit} tokens"
                )
            else:
                imported.prices.setdefault(name, {})[model] = price
    return imported


def merge(spec: TierPricingSpec, imported: Imported) -> TierPricingSpec:
    """``spec`` with the imported prices added where it sets none itself."""
    tiers = {tier.name: tier for tier in spec.tiers}  # its own tiers first, in its order
    for name, models in sorted(imported.prices.items()):
        tier = tiers.get(name)
        own = {m.name for m in tier.models} if tier else set()
        added = [ModelPrice(name=model, price=price)
                 for model, price in sorted(models.items()) if model not in own]  # fmt: skip
        if tier is None:
            tiers[name] = TierPrice(name=name, models=added)
        elif added:
            tiers[name] = tier.model_copy(update={"models": [*tier.models, *added]})
    return spec.model_copy(update={"tiers": list(tiers.values())})


def plan_teams(subscriptions: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Subscription name -> the team it bills: its cost centre, organisation or owner group."""
    teams: dict[str, str] = {}
    ordered = sorted(subscriptions, key=lambda s: (_meta(s, "namespace"), _meta(s, "name")))
    for subscription in ordered:
        spec = subscription.get("spec") or {}
        metadata = spec.get("tokenMetadata") or {}
        groups = [g.get("name") for g in (spec.get("owner") or {}).get("groups") or []]
        team = metadata.get("costCenter") or metadata.get("organizationId") or next(
            (g for g in groups if g), None)  # fmt: skip
        if team:
            teams.setdefault(_meta(subscription, "name"), str(team))
    return teams


def _price(rate: str, tokens_per_unit: int) -> str | None:
    """``rate x tokens_per_unit`` as a TierPricing price, or None when it is not one."""
    if not RATE.match(rate):
        return None
    text = format((Decimal(rate) * tokens_per_unit).normalize(), "f")
    return text if re.match(DECIMAL_PATTERN, text) else None


def _meta(obj: Mapping[str, Any], key: str) -> str:
    return str((obj.get("metadata") or {}).get(key) or "")
