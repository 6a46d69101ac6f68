"""Price versions and the price of a token in a bucket."""

from __future__ import annotations

import bisect
import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal

from chargeback.api.pricing import TierPricingSpec
from chargeback.api.source import TokenType
from chargeback.domain.money import parse_decimal


@dataclass(frozen=True)
class PriceVersion:
    """One accepted version of a TierPricing, in force from ``effective_from_ms``."""

    number: int
    effective_from_ms: int
    spec: TierPricingSpec
    digest: str = field(default="")

    def price(self, tier: str, model: str, token_type: str = TokenType.TOTAL) -> Decimal | None:
        """Price per unit for a tier, model and token type; None: unpriced.

        The most specific price wins: the model's price for the type, the model's ``price``,
        the tier's price for the type, the tier's ``price``.
        """
        for entry in self.spec.tiers:
            if entry.name == tier:
                for override in entry.models:
                    if override.name == model and override.price_of(token_type) is not None:
                        return parse_decimal(override.price_of(token_type) or "")
                found = entry.price_of(token_type)
                return None if found is None else parse_decimal(found)
        return None

    def included_tokens(self, tier: str) -> int:
        """Tokens per user per period that this tier includes for free."""
        return next((t.included_tokens for t in self.spec.tiers if t.name == tier), 0)


def spec_digest(spec: TierPricingSpec) -> str:
    """A stable digest of a pricing spec's prices (what makes two versions different)."""
    canonical = json.dumps(spec.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class PriceBook:
    """All versions of one pricing; answers which version is in force at a time."""

    def __init__(self, versions: list[PriceVersion]) -> None:
        self.versions = sorted(versions, key=lambda v: (v.effective_from_ms, v.number))
        self._starts = [v.effective_from_ms for v in self.versions]
        currencies = {v.spec.currency for v in self.versions}
        if len(currencies) > 1:
            raise ValueError(
                f"price versions use several currencies ({', '.join(sorted(currencies))}); "
                "a pricing keeps one currency"
            )
        self.currency = currencies.pop() if currencies else "USD"
        units = {v.spec.tokens_per_unit for v in self.versions}
        self.tokens_per_unit = units.pop() if len(units) == 1 else 0

    def at(self, t_ms: int) -> PriceVersion | None:
        """The version in force at ``t_ms`` (the latest that became effective at or before)."""
        index = bisect.bisect_right(self._starts, t_ms) - 1
        return self.versions[index] if index >= 0 else None
