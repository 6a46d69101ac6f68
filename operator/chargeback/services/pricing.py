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
from chargeback.services.outcome import Event, Failure, Outcome, outcome, unexpected
from chargeback.services.status import as_patch, conditions

log = logging.getLogger(__name__)


class PricingReconciler:
    """Records price versions and reads price books."""

    def __init__(
        self,
        pricing: PricingLedger,
        clock: Callable[[], int],
        exists: Callable[[str], bool] = lambda _: True,
    ) -> None:
        self.pricing = pricing
        self.clock = clock
        self.exists = exists
        """Whether the TierPricing object still exists (its versions outlive it in the ledger)."""

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
        effective = buckets.to_ms(parsed.effective_from) if parsed.effective_from else now
        stored = self.pricing.record_version(
            name, parsed.model_dump(mode="json", by_alias=True), spec_digest(parsed), effective, now
        )
        since = iso(stored.effective_from_ms)
        cond = Cond(Type.READY, True, Reason.VERSION_RECORDED,
                    f"price version {stored.version} in force from {since}")  # fmt: skip
        _publish_prices(name, parsed)
        result = TierPricingStatus.model_validate({
            "observedGeneration": generation,
            "conditions": conditions(previous, [cond], now, generation),
            "currentVersion": stored.version,
            "effectiveFrom": since,
        })  # fmt: skip
        return outcome(status, as_patch(result))

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
