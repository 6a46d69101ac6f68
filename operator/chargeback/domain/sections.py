"""The typed shapes of a report document's insight sections, as they appear in its JSON.

Typed dictionaries rather than models: the sections are rendered into the document byte for
byte as built (decimal strings, optional values as null), and mypy checks every key read.
"""

from __future__ import annotations

from typing import Required, TypedDict


class GapEntry(TypedDict):
    """A stretch without data, as ISO times."""

    start: str
    end: str
    reason: str


class ModelValue(TypedDict):
    """Cost to value of one model."""

    name: str
    tokens: int
    revenue: str
    gpuHours: str
    idleGpuHours: str
    uncostedGpuHours: str
    meanUtilization: str | None
    gpuCost: str
    fixedCost: str
    infrastructureCost: str
    margin: str
    costPerMillionTokens: str | None


class TeamValue(TypedDict):
    """Revenue and allocated infrastructure cost of one team."""

    name: str
    tokens: int
    revenue: str
    infrastructureCost: str
    margin: str


class ValueTotals(TypedDict):
    """Cost to value of every model together."""

    tokens: int
    revenue: str
    infrastructureCost: str
    idleCost: str
    margin: str
    gpuHours: str
    idleGpuHours: str
    uncostedGpuHours: str
    meanUtilization: str | None
    costPerMillionTokens: str | None


class CostToValueSection(TypedDict, total=False):
    """Revenue beside infrastructure cost; only ``available`` and ``reason`` when unavailable."""

    available: Required[bool]
    reason: Required[str]
    dataThrough: str
    totals: ValueTotals
    byModel: list[ModelValue]
    byTeam: list[TeamValue]
    gaps: list[GapEntry]


class ForecastNumbers(TypedDict):
    """Expected tokens and the interval around them."""

    tokens: int
    lower: int
    upper: int


class ForecastModel(ForecastNumbers):
    """The forecast of one model, with the GPU-hours it implies when known."""

    name: str
    gpuHours: str | None


class ForecastModelTier(ForecastNumbers):
    """The forecast of one model in one tier."""

    model: str
    tier: str


class PeriodEntry(TypedDict):
    """A period as ISO times."""

    start: str
    end: str


class HistoryEntry(TypedDict):
    """The history a forecast is made from."""

    start: str
    end: str
    days: int


class ForecastSection(TypedDict, total=False):
    """Next period's usage forecast; ``available`` False with the reason when there is none."""

    available: Required[bool]
    reason: str
    period: Required[PeriodEntry]
    history: Required[HistoryEntry]
    interval: Required[str]
    totals: ForecastNumbers
    byModel: list[ForecastModel]
    byModelTier: list[ForecastModelTier]
