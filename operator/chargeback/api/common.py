"""Types shared by the API: decimal money strings, durations, conditions, currencies."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field

from chargeback.api.base import ApiModel

GROUP = "chargeback.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DECIMAL_PATTERN = r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,12})?$"
DecimalString = Annotated[str, Field(pattern=DECIMAL_PATTERN, max_length=32)]
"""A non-negative decimal number written as a string (never a float), e.g. "0.005"."""

MONEY_PATTERN = r"^(0|[1-9][0-9]{0,29})(\.[0-9]{1,12})?$"
Money = Annotated[str, Field(pattern=MONEY_PATTERN, max_length=48)]
"""A non-negative amount of money in a status (up to 30 integer digits: sums of many prices)."""

DURATION_PATTERN = r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
Duration = Annotated[str, Field(pattern=DURATION_PATTERN, min_length=2, max_length=16)]
"""A duration such as 2h, 30m or 1d12h."""

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DnsLabel = Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]

CURRENCIES: dict[str, int] = {
    "AUD": 2, "BRL": 2, "CAD": 2, "CHF": 2, "CNY": 2, "CZK": 2, "DKK": 2, "EUR": 2, "GBP": 2,
    "HKD": 2, "INR": 2, "ILS": 2, "JPY": 0, "KRW": 0, "MXN": 2, "NOK": 2, "NZD": 2, "PLN": 2,
    "SEK": 2, "SGD": 2, "USD": 2, "ZAR": 2,
}  # fmt: skip
"""Supported ISO 4217 currencies and their minor units (digits after the decimal point)."""

Currency = Literal[
    "AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "ILS", "INR", "JPY",
    "KRW", "MXN", "NOK", "NZD", "PLN", "SEK", "SGD", "USD", "ZAR",
]  # fmt: skip


def unique(values: list[str], what: str) -> None:
    """Raise ValueError naming the first duplicate in ``values``."""
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {what} {value!r}")
        seen.add(value)


class Condition(ApiModel):
    """The state of one aspect of the object, as Kubernetes conditions are."""

    type: Annotated[str, Field(pattern=r"^[A-Z][A-Za-z]*$", max_length=64)]
    """Condition type, e.g. Ready, Priced, DataComplete, SourceAvailable."""
    status: Literal["True", "False", "Unknown"]
    """Whether the condition holds."""
    reason: Annotated[str, Field(pattern=r"^[A-Z][A-Za-z0-9]*$", max_length=64)]
    """Machine-readable CamelCase reason for the status."""
    message: Annotated[str, Field(max_length=2048)] = ""
    """Human-readable explanation."""
    last_transition_time: dt.datetime
    """When the status last changed."""
    observed_generation: int = 0
    """The metadata.generation the condition was computed for."""


def list_map(key: str, max_items: int, min_items: int = 0) -> Any:
    """Field settings of a list of named items the API server keys by ``key`` (no duplicates)."""
    return Field(
        min_length=min_items or None,
        max_length=max_items,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": [key]},
    )


Conditions = Annotated[list[Condition], list_map("type", 16)]
"""Conditions keyed by type, as Kubernetes expects them."""


class ObjectRef(ApiModel):
    """A reference to a cluster-scoped object by name."""

    name: DnsLabel
    """Name of the referenced object."""
