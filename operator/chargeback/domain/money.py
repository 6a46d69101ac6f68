"""Money: Decimal only, one rounding policy applied in one place.

Policy: each line item (period x user x team x tier x model) is computed exactly and rounded
once, half-up, to the currency's minor unit; every total is the sum of rounded lines, so exports
add up to the status totals to the cent.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation

from chargeback.api.common import CURRENCIES


def parse_decimal(text: str) -> Decimal:
    """A price from its decimal string; floats never get here (the API refuses them)."""
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"{text!r} is not a decimal number") from exc
    if not value.is_finite() or value < 0:
        raise ValueError(f"{text!r} is not a non-negative finite decimal")
    return value


def quantum(currency: str) -> Decimal:
    """The smallest amount of ``currency``: 0.01 for USD, 1 for JPY."""
    return Decimal(1).scaleb(-CURRENCIES[currency])


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round half-up to the currency's minor unit. The only rounding the project does."""
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)


def format_money(amount: Decimal, currency: str) -> str:
    """Decimal string with exactly the currency's minor digits, e.g. "12.30"."""
    return str(round_money(amount, currency))


def split_rounded(total: Decimal, exacts: Sequence[Decimal], currency: str) -> list[Decimal]:
    """Rounded parts of ``exacts`` (non-negative) that add up to ``total`` exactly.

    ``total`` is the rounded sum of ``exacts``; each part is its exact amount rounded down to
    the minor unit, and the units left go to the largest remainders (earlier ones on ties).
    """
    unit = quantum(currency)
    floors = [(e / unit).to_integral_value(rounding=ROUND_FLOOR) for e in exacts]
    left = int(total / unit) - int(sum(floors, Decimal(0)))
    order = sorted(range(len(exacts)), key=lambda i: (-(exacts[i] / unit - floors[i]), i))
    extra = set(order[:left])
    return [(floors[i] + (1 if i in extra else 0)) * unit for i in range(len(exacts))]
