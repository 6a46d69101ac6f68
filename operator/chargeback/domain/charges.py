"""Charges: a report's lines split by the price version in force (the rows of a FOCUS export).

A line (user, team, tier, model over the period) is priced bucket by bucket by the version in
force; its charges say how much of it fell under each version, over which part of the period, at
which unit price. The line's rounded cost is split so that its charges add up to it exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from chargeback.domain.money import split_rounded
from chargeback.domain.periods import Period
from chargeback.domain.pricing import PriceBook, PriceVersion


class Priced(Protocol):
    """What a charge needs of its line."""

    @property
    def tier(self) -> str:
        """The line's tier."""
        ...

    @property
    def model(self) -> str:
        """The line's model."""
        ...

    @property
    def token_type(self) -> str:
        """The line's token type."""
        ...

    @property
    def cost(self) -> Decimal:
        """The line's rounded cost."""
        ...


@dataclass
class Accumulator:
    """Tokens and exact cost summed over buckets."""

    tokens: int = 0
    exact: Decimal = field(default_factory=Decimal)
    unpriced: int = 0
    included: int = 0


@dataclass(frozen=True)
class Charge:
    """A line's usage under one price version: one charge line of an invoice (FOCUS)."""

    line: int
    """Index of the line in the document."""
    version: int | None
    """The price version in force (None: before the pricing's first version)."""
    start_ms: int
    """Start of the version's time in the period."""
    end_ms: int
    """End of the version's time in the period."""
    tokens: int
    cost: Decimal
    """The line's rounded cost split by version (the charges of a line add up to it)."""
    unpriced_tokens: int
    included_tokens: int
    unit_price: Decimal | None
    """Price per pricing unit (None when the tier or model had no price)."""
    tokens_per_unit: int


def split_by_version(
    per_line: list[dict[int | None, Accumulator]],
    items: Sequence[Priced],
    book: PriceBook,
    period: Period,
    currency: str,
) -> tuple[Charge, ...]:
    """Each line split by the version in force, its rounded cost split to add up exactly."""
    charges = []
    numbers = {v.number: i for i, v in enumerate(book.versions)}
    for index, (versions, line) in enumerate(zip(per_line, items, strict=True)):
        order = sorted(versions, key=lambda n: -1 if n is None else numbers[n])
        costs = split_rounded(line.cost, [versions[n].exact for n in order], currency)
        for number, cost in zip(order, costs, strict=True):
            acc = versions[number]
            start, end, version = _span(book, number, numbers, period)
            price = version.price(line.tier, line.model, line.token_type) if version else None
            charges.append(Charge(
                line=index, version=number, start_ms=start, end_ms=end, tokens=acc.tokens,
                cost=cost, unpriced_tokens=acc.unpriced, included_tokens=acc.included,
                unit_price=price, tokens_per_unit=version.spec.tokens_per_unit if version else 0,
            ))  # fmt: skip
    return tuple(charges)


def _span(
    book: PriceBook, number: int | None, numbers: dict[int, int], period: Period
) -> tuple[int, int, PriceVersion | None]:
    """The part of ``period`` in which version ``number`` was in force, and the version."""
    versions = book.versions
    if number is None:
        first = versions[0].effective_from_ms if versions else period.end_ms
        return period.start_ms, max(period.start_ms, min(period.end_ms, first)), None
    index = numbers[number]
    following = versions[index + 1].effective_from_ms if index + 1 < len(versions) else None
    end = period.end_ms if following is None else min(period.end_ms, following)
    start = min(max(period.start_ms, versions[index].effective_from_ms), end)
    return start, end, versions[index]
