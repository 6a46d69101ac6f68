"""Cost allocation to teams, as a pure function: parts conserve the amount to the cent."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from chargeback.domain.value import allocate

weights = st.dictionaries(st.text("abcdef", min_size=1, max_size=3), st.integers(0, 10**9),
                          min_size=1, max_size=12)  # fmt: skip
cents = st.integers(0, 10**10).map(lambda c: Decimal(c) / 100)


@given(cents, weights)
def test_parts_add_up_to_the_amount_and_follow_the_weights(
    amount: Decimal, shares: dict[str, int]
) -> None:
    parts = allocate(amount, shares, "USD")
    total = sum(shares.values())
    if total == 0:
        assert parts == {}
        return
    assert sum(parts.values(), Decimal(0)) == amount
    for name, part in parts.items():
        assert part == part.quantize(Decimal("0.01"))
        exact = amount * shares[name] / total
        assert abs(part - exact) < Decimal("0.01")


def test_remainders_go_to_the_largest_fractions_then_by_name() -> None:
    assert allocate(Decimal("1.00"), {"a": 1, "b": 1, "c": 1}, "USD") == {
        "a": Decimal("0.34"), "b": Decimal("0.33"), "c": Decimal("0.33"),
    }  # fmt: skip
    assert allocate(Decimal(100), {"x": 2, "y": 1}, "JPY") == {"x": Decimal(67), "y": Decimal(33)}
    assert allocate(Decimal("5.00"), {"idle": 0}, "USD") == {}  # no tokens: idle cost, not a share
