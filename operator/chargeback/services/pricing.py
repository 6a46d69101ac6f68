"""TierPricing reconciliation: record a new price version when the spec changes.

Versions are append-only in the ledger; the status names the version in force. Reports read the
whole price book, so a change of prices never rewrites a period priced before it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from chargeback.adapters import metrics
from chargeback.adapters.pricing_ledger import PricingLedger
from chargeback.api.base import problems
from chargeback.api.pricing import TierPricingSpec, TierPricingStatus
from chargeback.domain import buckets
from chargeback.domain.conditions import Cond, Reason, Type
from chargeback.domain.pricing import PriceBook, PriceVersion, spec_digest
from chargeback.domain.reports import iso
from chargeback.domain.subscriptions import GROUP, PLURAL, merge, read_rates
from chargeback.services.outcome import Event, Failure, Outcome, outcome, unexpected
from chargeback.services.status import as_patch, conditions

log = logging.getLogger(__name__)

Subscriptions = Callable[[tuple[str, ...]], list[dict[str, Any]] | None]
MAX_PROBLEMS = 10
"""Rates left out named in the condition (the rest are counted)."""


class InvalidPricing(ValueError):
    """The pricing cannot be a price version (the message says why)."""


class PricingReconciler:
    """Records price versions and reads price books."""

    def __init__(
        self,
        pricing: PricingLedger,
        clock: Callable[[], int],
        exists: Callable[[str], bool] = lambda _: True,
        subscriptions: Subscriptions = lambda _: None,
    ) -> None:
        self.pricing = pricing
        self.clock = clock
        self.exists = exists
        """Whether the TierPricing object still exists (its versions outlive it in the ledger)."""
        self.subscriptions = subscriptions
        """The MaaSSubscription objects of some namespaces (all: none given); None when the
        cluster has no such resource."""

    def reconcile(
        self, name: str, spec: Mapping[str, Any], generation: int, status: Mapping[str, Any]
    ) -> Outcome:
        """Record the spec as a price version if it changed; return the status.

        A ledger that cannot be written (or anything else failing) is a condition and a retry.
        """
        try:
            return self._reconcile(name, spec, generation, status)
        except Exception as exc:  # every failure becomes a condition
            log.exception("Failed to reconcile TierPricing %s", name)
            reason, message = unexpected(exc)
            now = self.clock()
            cond = Cond(Type.READY, False, reason, message)
            failed = TierPricingStatus(
                observed_generation=generation,
                conditions=conditions(status.get("conditions") or [], [cond], now, generation),
            )
            return outcome(status, as_patch(failed), failure=Failure.TEMPORARY, message=message,
                           events=[Event(True, reason, message)])  # fmt: skip

    def _reconcile(
        self, name: str, spec: Mapping[str, Any], generation: int, status: Mapping[str, Any]
    ) -> Outcome:
        now = self.clock()
        previous = status.get("conditions") or []
        try:
            parsed = TierPricingSpec.model_validate(spec)
        except ValidationError as exc:
            message = problems(exc, "spec.")
            cond = Cond(Type.READY, False, Reason.INVALID_SPEC, message)
            failed = TierPricingStatus(
                observed_generation=generation,
                conditions=conditions(previous, [cond], now, generation),
            )
            return outcome(status, as_patch(failed), failure=Failure.PERMANENT, message=message)
        own = spec_digest(parsed)
        edited = own != status.get("specDigest")
        # A change of the spec takes effect when it says; one of imported rates, when seen.
        effective = (
            buckets.to_ms(parsed.effective_from) if edited and parsed.effective_from else now
        )
        try:
            parsed, imported, count = self._imported(parsed)
        except InvalidPricing as exc:
            cond = Cond(Type.READY, False, Reason.INVALID_SPEC, str(exc))
            conds = conditions(previous, [cond], now, generation)
            failed = TierPricingStatus(observed_generation=generation, conditions=conds)
            return outcome(status, as_patch(failed), failure=Failure.TEMPORARY, message=str(exc))
        stored = self.pricing.record_version(
            name, parsed.model_dump(mode="json", by_alias=True), spec_digest(parsed), effective, now
        )
        since = iso(stored.effective_from_ms)
        found = [Cond(Type.READY, True, Reason.VERSION_RECORDED,
                      f"price version {stored.version} in force from {since}")]  # fmt: skip
        if imported is not None:
            found.append(imported)
        _publish_prices(name, parsed)
        result = TierPricingStatus.model_validate({
            "observedGeneration": generation,
            "conditions": conditions(previous, found, now, generation),
            "currentVersion": stored.version,
            "effectiveFrom": since,
            "importedPrices": count,
            "specDigest": own,
        })  # fmt: skip
        return outcome(status, as_patch(result))

    def _imported(self, spec: TierPricingSpec) -> tuple[TierPricingSpec, Cond | None, int]:
        """The spec with the MaaSSubscriptions' rates when it asks for them.

        Also a condition saying what was taken and left out, and how many prices were taken.
        """
        wanted = spec.maas_subscriptions
        if wanted is None:
            return spec, None, 0
        objects = self.subscriptions(tuple(wanted.namespaces))
        if objects is None:
            if not spec.tiers:
                raise InvalidPricing(f"no tier priced: the TierPricing lists none and "
                                     f"{PLURAL}.{GROUP} is not served by this cluster")  # fmt: skip
            return spec, Cond(Type.PRICES_IMPORTED, False, Reason.NOT_INSTALLED,
                              f"{PLURAL}.{GROUP} is not served by this cluster: no rates "
                              "imported"), 0  # fmt: skip
        imported = read_rates(objects, spec.tokens_per_unit)
        merged = merge(spec, imported)
        if not merged.tiers:
            raise InvalidPricing(f"no tier priced: the TierPricing lists none and no "
                                 f"MaaSSubscription has a valid rate ({len(objects)} read); "
                                 + "; ".join(imported.problems[:MAX_PROBLEMS]))  # fmt: skip
        taken = (f"{_many(imported.count, 'price')} from "
                 f"{_many(len(imported.prices), 'MaaSSubscription')}")  # fmt: skip
        if imported.problems:
            left = "; ".join(imported.problems[:MAX_PROBLEMS])
            more = len(imported.problems) - MAX_PROBLEMS
            left += f"; and {more} more" if more > 0 else ""
            return merged, Cond(Type.PRICES_IMPORTED, False, Reason.SOME_RATES_INVALID,
                                f"{taken}; left out: {left}"), imported.count  # fmt: skip
        return merged, Cond(Type.PRICES_IMPORTED, True, Reason.IMPORTED, taken), imported.count

    def price_book(self, pricing: str) -> PriceBook | None:
        """Every recorded version of a pricing, or None when it has none."""
        versions = [
            PriceVersion(
                number=v.version,
                effective_from_ms=v.effective_from_ms,
                spec=TierPricingSpec.model_validate(v.spec),
                digest=v.digest,
            )
            for v in self.pricing.versions(pricing)
        ]
        return PriceBook(versions) if versions else None


def _many(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _publish_prices(name: str, spec: TierPricingSpec) -> None:
    """Each price set, per tier, model ("" for the tier's own) and token type ("" for price)."""
    for tier in spec.tiers:
        for model, entry in (("", tier), *((m.name, m) for m in tier.models)):
            for token_type, price in (("", entry.price), ("input", entry.input_price),
                                      ("output", entry.output_price),
                                      ("cached_input", entry.cached_input_price)):  # fmt: skip
                if price is not None:
                    metrics.tier_price.labels(name, tier.name, model, token_type,
                                              spec.currency).set(float(price))  # fmt: skip
