"""Status of a UsageReport, built as the typed model the CRD is generated from.

The summary is bounded (its size does not grow with users: the full document is in the
exports); conditions say what the numbers are worth (complete? priced? insight available?).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from chargeback.api.common import Condition
from chargeback.api.report import (
    Breakdown,
    CostToValueSummary,
    FixedPeriod,
    ForecastEntry,
    ForecastSummary,
    ModelValue,
    PeriodSummary,
    SourceReading,
    Totals,
    UsageReportStatus,
    ValueTotals,
)
from chargeback.domain.conditions import Cond, Reason, Type, merge, ready
from chargeback.domain.contracts import Detected
from chargeback.domain.money import format_money
from chargeback.domain.reports import Breakdown as DocumentBreakdown
from chargeback.domain.reports import ReportDocument, iso
from chargeback.domain.sections import CostToValueSection, ForecastSection

STATUS_LIMITS = {"byTier": 64, "byTeam": 50, "byModel": 50, "insight": 50}
BLOCKING = (Type.SOURCE_AVAILABLE,)
"""Conditions that make a report not Ready; the others qualify its numbers."""


NAME_LIMIT = 253
"""Names in status (users, teams, tiers, models) are cut to this; the exports keep them whole."""


def bounded(name: str, limit: int = NAME_LIMIT) -> str:
    """``name``, or its head marked with "..." when it is longer than ``limit``."""
    return name if len(name) <= limit else f"{name[: limit - 3]}..."


def gaps_message(document: ReportDocument) -> str:
    """The document's gaps, readably: ``start - end: reason; ...``."""
    return "; ".join(f"{iso(g.start_ms)} - {iso(g.end_ms)}: {g.reason}" for g in document.gaps)


def report_conditions(document: ReportDocument, source: str = "") -> list[Cond]:
    """What a rendered document says about itself, Ready first (``source``: how it was read)."""
    data = (
        Cond(Type.DATA_COMPLETE, True, Reason.NO_GAPS)
        if not document.gaps
        else Cond(Type.DATA_COMPLETE, False, Reason.GAPS_RECORDED, gaps_message(document))
    )
    unpriced = document.unpriced_tokens
    priced = (
        Cond(Type.PRICED, True, Reason.ALL_USAGE_PRICED)
        if not unpriced
        else Cond(Type.PRICED, False, Reason.UNPRICED_USAGE,
                  f"{unpriced} tokens have no price (tiers or models missing from the "
                  "pricing, or usage before its first version)")
    )  # fmt: skip
    others = [
        Cond(Type.SOURCE_AVAILABLE, True, Reason.COLLECTED, source),
        data,
        priced,
        _insight(Type.COST_TO_VALUE, document.cost_to_value),
        _insight(Type.FORECAST, document.forecast),
    ]
    return [ready(others, BLOCKING), *others]


def _insight(kind: Type, section: CostToValueSection | ForecastSection | None) -> Cond:
    if section is None:
        return Cond(kind, False, Reason.UNAVAILABLE, "not computed")
    if section["available"]:
        return Cond(kind, True, Reason.COMPUTED, section.get("reason", ""))
    return Cond(kind, False, Reason.UNAVAILABLE, section.get("reason", ""))


def conditions(
    previous: Sequence[Mapping[str, Any]], current: Sequence[Cond], now_ms: int, generation: int
) -> list[Condition]:
    """The merged conditions as models (transition times kept where a status held)."""
    merged = merge(previous, current, iso(now_ms), generation)
    return [Condition.model_validate(c) for c in merged]


def summarize(
    document: ReportDocument,
    *,
    top_users: int,
    finals: Sequence[PeriodSummary],
    exports: Sequence[str],
    now_ms: int,
) -> UsageReportStatus:
    """The bounded summary of a document (conditions and generation are set by the caller)."""
    currency = document.currency

    def rows(items: Sequence[DocumentBreakdown], limit: int) -> list[Breakdown]:
        return [Breakdown(name=bounded(b.name), tokens=b.tokens,
                          cost=format_money(b.cost, currency))
                for b in items[:limit]]  # fmt: skip

    return UsageReportStatus(
        period=FixedPeriod(
            start=dt.datetime.fromtimestamp(document.period.start_ms // 1000, dt.UTC),
            end=dt.datetime.fromtimestamp(document.period.end_ms // 1000, dt.UTC),
        ),
        currency=currency,
        totals=Totals(
            tokens=document.tokens,
            cost=format_money(document.cost, currency),
            unpriced_tokens=document.unpriced_tokens,
        ),
        by_tier=rows(document.breakdown("tier"), STATUS_LIMITS["byTier"]),
        by_team=rows(document.breakdown("team"), STATUS_LIMITS["byTeam"]),
        by_model=rows(document.breakdown("model"), STATUS_LIMITS["byModel"]),
        by_token_type=rows(document.breakdown("token_type"), 4),
        top_users=rows(document.top_users("cost"), top_users),
        finalized=list(finals),
        cost_to_value=_value_summary(document.cost_to_value),
        forecast=_forecast_summary(document.forecast),
        exports=list(exports),
        last_refresh_time=dt.datetime.fromtimestamp(now_ms // 1000, dt.UTC),
    )


def _value_summary(value: CostToValueSection | None) -> CostToValueSummary | None:
    if not value or not value["available"]:
        return None
    totals, limit = value["totals"], STATUS_LIMITS["insight"]
    return CostToValueSummary(
        totals=ValueTotals(
            revenue=totals["revenue"], infrastructure_cost=totals["infrastructureCost"],
            idle_cost=totals["idleCost"], margin=totals["margin"], gpu_hours=totals["gpuHours"],
            idle_gpu_hours=totals["idleGpuHours"],
        ),
        by_model=[
            ModelValue(
                name=bounded(m["name"]), tokens=m["tokens"], revenue=m["revenue"],
                infrastructure_cost=m["infrastructureCost"], margin=m["margin"],
                gpu_hours=m["gpuHours"], idle_gpu_hours=m["idleGpuHours"],
                cost_per_million_tokens=m["costPerMillionTokens"],
                mean_utilization=m["meanUtilization"],
            )
            for m in value["byModel"][:limit]
        ],
    )  # fmt: skip


def _forecast_summary(forecast: ForecastSection | None) -> ForecastSummary | None:
    if not forecast or not forecast["available"]:
        return None
    busiest = sorted(forecast["byModel"], key=lambda m: (-m["tokens"], m["name"]))
    totals = forecast["totals"]
    return ForecastSummary.model_validate({
        **forecast["period"],
        "total": ForecastEntry(name="total", tokens=totals["tokens"], lower=totals["lower"],
                               upper=totals["upper"]),
        "byModel": [
            ForecastEntry(name=bounded(m["name"]), tokens=m["tokens"], lower=m["lower"],
                          upper=m["upper"], gpu_hours=m["gpuHours"])
            for m in busiest[: STATUS_LIMITS["insight"]]
        ],
    })  # fmt: skip


def source_reading(
    found: Detected | None, status: Mapping[str, Any] | None = None
) -> SourceReading | None:
    """How the counter was read, for the status.

    A finalised period is served from the ledger, with nothing detected: the reading it was
    collected with (in ``status``) stays.
    """
    if found is not None:
        return SourceReading(contract=found.contract, message=found.message)
    try:
        return SourceReading.model_validate((status or {}).get("source"))
    except ValidationError:
        return None


def as_patch(status: UsageReportStatus | Any) -> dict[str, Any]:
    """The fields set on a status model, as the JSON the API server stores.

    Fields explicitly set to None stay in (a merge patch deletes them); unset fields are left
    out (a failed reconciliation keeps the last good summary).
    """
    patch: dict[str, Any] = status.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return patch


def full_patch(status: UsageReportStatus) -> dict[str, Any]:
    """Every field of the summary, as the API server will store it.

    Top-level fields that are None stay in the patch (a merge patch removes them: what is gone
    from the summary goes from the status); None deeper down is left out, as the API server
    would drop it, so a refresh with the same numbers compares equal to what is stored.
    """
    patch: dict[str, Any] = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    dumped = status.model_dump(by_alias=True)
    return {**{key: None for key, value in dumped.items() if value is None}, **patch}
