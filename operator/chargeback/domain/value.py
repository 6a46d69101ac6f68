"""Cost-to-value: what serving each model costs, what it brings back, and who it serves.

Per model: tokens, chargeback revenue (the report's priced lines), GPU-hours and their cost by
the GPU product's rate of the price version in force in each bucket, fixed monthly costs
prorated by the hour, margin, cost per 1M tokens, mean utilisation, and idle GPU-hours (GPU
time in buckets where the model served no tokens). A model's cost is rounded once, half-up;
teams carry shares of each model's cost by tokens, split in whole minor units by largest
remainder so the shares add up to the model's cost exactly. Cost of models that served no
tokens at all is idle cost: shown in the totals, never spread over teams.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from chargeback.api.pricing import InfrastructureCosts
from chargeback.domain.buckets import HOUR_MS
from chargeback.domain.infra import GpuRow, UtilizationRow, gpu_hours
from chargeback.domain.money import format_money, parse_decimal, quantum, round_money
from chargeback.domain.periods import Period
from chargeback.domain.pricing import PriceBook
from chargeback.domain.reports import ReportDocument, iso
from chargeback.domain.sections import CostToValueSection, ModelValue, TeamValue, ValueTotals
from chargeback.domain.usage import Gap

RATIO = Decimal("0.0001")
PERCENT = Decimal("0.1")


@dataclass
class _Model:
    tokens: int = 0
    revenue: Decimal = field(default_factory=Decimal)
    gpu_ms: int = 0
    idle_gpu_ms: int = 0
    uncosted_gpu_ms: int = 0
    busy_ms: int = 0
    observed_gpu_ms: int = 0
    gpu_exact: Decimal = field(default_factory=Decimal)
    fixed_exact: Decimal = field(default_factory=Decimal)


@dataclass(frozen=True)
class InfraUsage:
    """What the ledger holds of an infrastructure source for a period."""

    gpu: tuple[GpuRow, ...]
    utilization: tuple[UtilizationRow, ...]
    gaps: tuple[Gap, ...]
    through_ms: int
    """Infrastructure usage is collected up to here."""


def unavailable(reason: str) -> CostToValueSection:
    """The cost-to-value section of a report that cannot have one, saying why."""
    return {"available": False, "reason": reason}


def month_ms(t_ms: int) -> int:
    """Length of the UTC calendar month holding ``t_ms``."""
    day = dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC)
    return calendar.monthrange(day.year, day.month)[1] * 24 * HOUR_MS


def cost_to_value(
    document: ReportDocument,
    served: set[tuple[str, int]],
    infra: InfraUsage,
    book: PriceBook,
    bucket_ms: int,
) -> CostToValueSection:
    """The cost-to-value section of ``document``.

    ``served``: (model, bucket start) of every bucket in which the model served tokens.
    """
    period = document.period
    through = min(infra.through_ms, period.end_ms)
    reason = _unavailable_reason(book, infra, period.start_ms, through)
    if reason:
        return unavailable(reason)
    models: dict[str, _Model] = defaultdict(_Model)
    team_tokens: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    team_revenue: dict[str, Decimal] = defaultdict(Decimal)
    for line in document.lines:
        models[line.model].tokens += line.tokens
        models[line.model].revenue += line.cost
        team_tokens[line.model][line.team] += line.tokens
        team_revenue[line.team] += line.cost
    served = {(model, start) for model, start in served if period.contains(start)}
    _add_gpus(models, infra, book, served, period)
    _add_utilization_and_fixed(models, infra, book, period, through=through, bucket_ms=bucket_ms)

    currency = document.currency

    def money(amount: Decimal) -> str:
        return format_money(amount, currency)

    by_model: list[ModelValue] = []
    team_cost: dict[str, Decimal] = defaultdict(Decimal)
    idle_cost = Decimal(0)
    for name, entry in models.items():
        gpu_cost = round_money(entry.gpu_exact, currency)
        cost = round_money(entry.gpu_exact + entry.fixed_exact, currency)
        if entry.tokens:
            for team, amount in allocate(cost, team_tokens[name], currency).items():
                team_cost[team] += amount
        else:
            idle_cost += cost
        by_model.append({
            "name": name,
            "tokens": entry.tokens,
            "revenue": money(entry.revenue),
            "gpuHours": gpu_hours(entry.gpu_ms),
            "idleGpuHours": gpu_hours(entry.idle_gpu_ms),
            "uncostedGpuHours": gpu_hours(entry.uncosted_gpu_ms),
            "meanUtilization": _utilization(entry.busy_ms, entry.observed_gpu_ms),
            "gpuCost": money(gpu_cost),
            "fixedCost": money(cost - gpu_cost),
            "infrastructureCost": money(cost),
            "margin": money(entry.revenue - cost),
            "costPerMillionTokens": _per_million(cost, entry.tokens),
        })  # fmt: skip
    by_model.sort(key=lambda m: (-Decimal(m["infrastructureCost"]), -m["tokens"], m["name"]))
    by_team: list[TeamValue] = [
        {"name": team, "tokens": sum(t.get(team, 0) for t in team_tokens.values()),
         "revenue": money(team_revenue[team]), "infrastructureCost": money(team_cost[team]),
         "margin": money(team_revenue[team] - team_cost[team])}
        for team in sorted(team_revenue)
    ]  # fmt: skip
    by_team.sort(key=lambda t: (-Decimal(t["infrastructureCost"]), t["name"]))
    total_cost = sum((Decimal(m["infrastructureCost"]) for m in by_model), Decimal(0))
    revenue = document.cost
    totals: ValueTotals = {
        "tokens": document.tokens,
        "revenue": money(revenue),
        "infrastructureCost": money(total_cost),
        "idleCost": money(idle_cost),
        "margin": money(revenue - total_cost),
        "gpuHours": gpu_hours(sum(m.gpu_ms for m in models.values())),
        "idleGpuHours": gpu_hours(sum(m.idle_gpu_ms for m in models.values())),
        "uncostedGpuHours": gpu_hours(sum(m.uncosted_gpu_ms for m in models.values())),
        "meanUtilization": _utilization(sum(m.busy_ms for m in models.values()),
                                        sum(m.observed_gpu_ms for m in models.values())),
        "costPerMillionTokens": _per_million(total_cost, document.tokens),
    }  # fmt: skip
    notes = _notes(models, infra)
    return {
        "available": True,
        "reason": "; ".join(notes),
        "dataThrough": iso(through),
        "totals": totals,
        "byModel": by_model,
        "byTeam": by_team,
        "gaps": [
            {"start": iso(g.start_ms), "end": iso(g.end_ms), "reason": g.reason}
            for g in infra.gaps
            if g.start_ms < period.end_ms and g.end_ms > period.start_ms
        ],
    }


def _add_utilization_and_fixed(
    models: dict[str, _Model],
    infra: InfraUsage,
    book: PriceBook,
    period: Period,
    *,
    through: int,
    bucket_ms: int,
) -> None:
    """Utilisation integrals, and fixed monthly costs prorated by calendar month per bucket."""
    for util in infra.utilization:
        if period.contains(util.bucket_start_ms):
            models[util.model].busy_ms += util.busy_ms
            models[util.model].observed_gpu_ms += util.observed_gpu_ms
    for start in range(period.start_ms, through, bucket_ms):
        costs = _costs(book, start)
        share = Decimal(min(bucket_ms, period.end_ms - start)) / month_ms(start)
        for fixed in costs.models if costs else []:
            models[fixed.name].fixed_exact += parse_decimal(fixed.monthly) * share


def _notes(models: dict[str, _Model], infra: InfraUsage) -> list[str]:
    """What the reader of an available cost-to-value should know about its completeness."""
    notes = []
    if not infra.gpu:
        notes.append(
            "no GPUs allocated to model-serving pods in this period "
            "(check the pod label that names the model)"
        )
    if not any(m.observed_gpu_ms for m in models.values()):
        notes.append("no GPU utilisation metrics (DCGM) for the serving pods: utilisation unknown")
    if any(m.uncosted_gpu_ms for m in models.values()):
        notes.append("some GPU-hours fall under a price version without infrastructure costs")
    return notes


def _unavailable_reason(book: PriceBook, infra: InfraUsage, start: int, through: int) -> str:
    """Why a period can have no cost-to-value, or "" when it can."""
    if not any(v.spec.infrastructure for v in book.versions):
        return (
            "the TierPricing sets no spec.infrastructure costs (GPU-hour rates), so "
            "infrastructure cost and margins cannot be computed"
        )
    if through <= start:
        return "no infrastructure usage is collected for this period yet"
    missing = sum(
        min(g.end_ms, through) - max(g.start_ms, start)
        for g in infra.gaps
        if g.start_ms < through and g.end_ms > start
    )
    if missing >= through - start:
        reason = infra.gaps[-1].reason if infra.gaps else "no data"
        return f"no infrastructure metrics for this period: {reason}"
    return ""


def _add_gpus(
    models: dict[str, _Model],
    infra: InfraUsage,
    book: PriceBook,
    served: set[tuple[str, int]],
    period: Period,
) -> None:
    """GPU-hours, idle GPU-hours and their exact cost at the rates in force per bucket."""
    for gpu in infra.gpu:
        if not period.contains(gpu.bucket_start_ms):
            continue
        entry = models[gpu.model]
        entry.gpu_ms += gpu.gpu_ms
        if (gpu.model, gpu.bucket_start_ms) not in served:
            entry.idle_gpu_ms += gpu.gpu_ms
        costs = _costs(book, gpu.bucket_start_ms)
        if costs is None:
            entry.uncosted_gpu_ms += gpu.gpu_ms
            continue
        rate = next((p.gpu_hour for p in costs.gpu_products if p.name == gpu.product),
                    costs.gpu_hour)  # fmt: skip
        entry.gpu_exact += Decimal(gpu.gpu_ms) * parse_decimal(rate) / HOUR_MS


def allocate(amount: Decimal, weights: dict[str, int], currency: str) -> dict[str, Decimal]:
    """Split ``amount`` by ``weights`` in whole minor units; the parts add up to ``amount``."""
    unit = quantum(currency)
    units = int(amount / unit)
    total = sum(weights.values())
    if total == 0:
        return {}
    exact = {name: Decimal(units) * weight / total for name, weight in weights.items()}
    parts = {name: int(value) for name, value in exact.items()}
    left = units - sum(parts.values())
    by_remainder = sorted(exact, key=lambda name: (-(exact[name] - parts[name]), name))
    for name in by_remainder[:left]:
        parts[name] += 1
    return {name: Decimal(count) * unit for name, count in parts.items()}


def _costs(book: PriceBook, t_ms: int) -> InfrastructureCosts | None:
    version = book.at(t_ms)
    return version.spec.infrastructure if version else None


def _utilization(busy_ms: int, observed_gpu_ms: int) -> str | None:
    if not observed_gpu_ms:
        return None
    percent = Decimal(busy_ms) / observed_gpu_ms
    return str(percent.quantize(PERCENT, rounding=ROUND_HALF_UP))


def _per_million(cost: Decimal, tokens: int) -> str | None:
    if not tokens:
        return None
    return str((cost * 1_000_000 / tokens).quantize(RATIO, rounding=ROUND_HALF_UP))
