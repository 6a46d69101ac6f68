"""Report documents: usage priced by version, attributed to teams, broken down, conserved.

Every breakdown is a sum of rounded line items, so each adds up to the totals exactly, in tokens
and in money. Documents render deterministically (``domain/formats``): the same inputs give the
same bytes, which is what lets a finalised period be stored once and re-rendered identically.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from chargeback.api.common import API_VERSION
from chargeback.api.source import TokenType
from chargeback.domain.attribution import TeamResolver
from chargeback.domain.charges import Accumulator, Charge, split_by_version
from chargeback.domain.money import format_money, round_money
from chargeback.domain.periods import Period
from chargeback.domain.pricing import PriceBook, PriceVersion
from chargeback.domain.sections import CostToValueSection, ForecastSection
from chargeback.domain.usage import Gap, UsageRow

LINE_COLUMNS = (
    "user",
    "team",
    "tier",
    "model",
    "tokenType",
    "tokens",
    "cost",
    "unpricedTokens",
    "includedTokens",
)


@dataclass(frozen=True)
class Line:
    """One line item: a user's tokens of one type and model in one tier (and team)."""

    user: str
    team: str
    tier: str
    model: str
    tokens: int
    cost: Decimal
    unpriced_tokens: int
    included_tokens: int
    token_type: str = TokenType.TOTAL
    """input, output, cached_input or total: the kinds never overlap."""


@dataclass(frozen=True)
class Breakdown:
    """Tokens and cost of one value of a dimension."""

    name: str
    tokens: int
    cost: Decimal


@dataclass(frozen=True)
class ReportDocument:
    """The full result of a report for one period."""

    report: str
    period: Period
    currency: str
    lines: tuple[Line, ...]
    gaps: tuple[Gap, ...]
    pricing_versions: tuple[dict[str, Any], ...]
    data_through_ms: int
    finalized: bool = False
    top_n: int = 10
    cost_to_value: CostToValueSection | None = None
    """Revenue beside infrastructure cost (``services/value.py``)."""
    forecast: ForecastSection | None = None
    """Next period's usage forecast (``services/value.py``)."""
    scope: tuple[str, str] | None = None
    """(name, matchers) of the UsageScope the usage was limited by; None: not limited."""
    charges: tuple[Charge, ...] | None = None
    """The lines split by price version; None in documents finalised before charges existed."""
    tokens: int = field(init=False)
    cost: Decimal = field(init=False)
    unpriced_tokens: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", sum(line.tokens for line in self.lines))
        object.__setattr__(self, "cost", sum((line.cost for line in self.lines), Decimal(0)))
        object.__setattr__(self, "unpriced_tokens", sum(ln.unpriced_tokens for ln in self.lines))

    def breakdown(self, dimension: str) -> list[Breakdown]:
        """Per value of ``dimension`` (team, user, tier, model, token_type), largest cost first."""
        tokens: dict[str, int] = defaultdict(int)
        cost: dict[str, Decimal] = defaultdict(Decimal)
        for line in self.lines:
            key = getattr(line, dimension)
            tokens[key] += line.tokens
            cost[key] += line.cost
        rows = [Breakdown(name, tokens[name], cost[name]) for name in tokens]
        return sorted(rows, key=lambda b: (-b.cost, -b.tokens, b.name))

    def top_users(self, by: str) -> list[Breakdown]:
        """The ``top_n`` users by ``tokens`` or ``cost``."""
        users = self.breakdown("user")
        if by == "tokens":
            users.sort(key=lambda b: (-b.tokens, -b.cost, b.name))
        return users[: self.top_n]

    @property
    def data_complete(self) -> bool:
        """No gap overlaps the period and usage is collected through its end."""
        return not self.gaps and self.data_through_ms >= self.period.end_ms

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready document."""
        money = self._money

        def rows(items: Iterable[Breakdown]) -> list[dict[str, Any]]:
            return [{"name": b.name, "tokens": b.tokens, "cost": money(b.cost)} for b in items]

        return {
            "apiVersion": API_VERSION,
            "kind": "UsageReportDocument",
            "report": self.report,
            "period": {"start": iso(self.period.start_ms), "end": iso(self.period.end_ms)},
            "finalized": self.finalized,
            "dataComplete": self.data_complete,
            "dataThrough": iso(min(self.data_through_ms, self.period.end_ms)),
            "currency": self.currency,
            "totals": {
                "tokens": self.tokens,
                "cost": money(self.cost),
                "unpricedTokens": self.unpriced_tokens,
            },
            "byTeam": rows(self.breakdown("team")),
            "byTier": rows(self.breakdown("tier")),
            "byModel": rows(self.breakdown("model")),
            "byUser": rows(self.breakdown("user")),
            "byTokenType": rows(self.breakdown("token_type")),
            "topUsersByTokens": rows(self.top_users("tokens")),
            "topUsersByCost": rows(self.top_users("cost")),
            "gaps": [
                {"start": iso(g.start_ms), "end": iso(g.end_ms), "reason": g.reason}
                for g in self.gaps
            ],
            "pricingVersions": list(self.pricing_versions),
            **(
                {}
                if self.scope is None
                else {"scope": {"name": self.scope[0], "selector": self.scope[1]}}
            ),
            **({} if self.cost_to_value is None else {"costToValue": self.cost_to_value}),
            **({} if self.forecast is None else {"forecast": self.forecast}),
            "lines": [
                {
                    "user": ln.user,
                    "team": ln.team,
                    "tier": ln.tier,
                    "model": ln.model,
                    "tokenType": ln.token_type,
                    "tokens": ln.tokens,
                    "cost": money(ln.cost),
                    "unpricedTokens": ln.unpriced_tokens,
                    "includedTokens": ln.included_tokens,
                }
                for ln in self.lines
            ],
            **({} if self.charges is None else {"charges": [
                {
                    "line": c.line, "version": c.version, "start": iso(c.start_ms),
                    "end": iso(c.end_ms), "tokens": c.tokens, "cost": money(c.cost),
                    "unpricedTokens": c.unpriced_tokens, "includedTokens": c.included_tokens,
                    "unitPrice": None if c.unit_price is None else str(c.unit_price),
                    "tokensPerUnit": c.tokens_per_unit,
                }
                for c in self.charges
            ]}),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportDocument:
        """A document back from :meth:`as_dict` output (a finalised period read from storage).

        ``as_dict(from_dict(d)) == d``: the lines, gaps and sections carry everything else.
        The sections are taken as stored (they were built by this code's typed functions).
        """
        lines = tuple(
            Line(user=ln["user"], team=ln["team"], tier=ln["tier"], model=ln["model"],
                 tokens=ln["tokens"], cost=Decimal(ln["cost"]),
                 unpriced_tokens=ln["unpricedTokens"], included_tokens=ln["includedTokens"],
                 token_type=ln.get("tokenType", "total"))
            for ln in data["lines"]
        )  # fmt: skip
        return cls(
            report=data["report"],
            period=Period(_ms(data["period"]["start"]), _ms(data["period"]["end"])),
            currency=data["currency"],
            lines=lines,
            gaps=tuple(Gap(_ms(g["start"]), _ms(g["end"]), g["reason"]) for g in data["gaps"]),
            pricing_versions=tuple(data["pricingVersions"]),
            data_through_ms=_ms(data["dataThrough"]),
            finalized=data["finalized"],
            top_n=max(len(data["topUsersByCost"]), 1),
            scope=(data["scope"]["name"], data["scope"]["selector"]) if "scope" in data else None,
            cost_to_value=data.get("costToValue"),
            forecast=data.get("forecast"),
            charges=None if "charges" not in data else tuple(
                Charge(line=c["line"], version=c["version"], start_ms=_ms(c["start"]),
                       end_ms=_ms(c["end"]), tokens=c["tokens"], cost=Decimal(c["cost"]),
                       unpriced_tokens=c["unpricedTokens"], included_tokens=c["includedTokens"],
                       unit_price=None if c["unitPrice"] is None else Decimal(c["unitPrice"]),
                       tokens_per_unit=c["tokensPerUnit"])
                for c in data["charges"]
            ),
        )  # fmt: skip

    def _money(self, amount: Decimal) -> str:
        return format_money(amount, self.currency)


def iso(t_ms: int) -> str:
    """UTC ISO 8601 with a Z suffix."""
    return dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


def build_document(
    *,
    report: str,
    period: Period,
    usage: Iterable[UsageRow],
    book: PriceBook,
    teams: TeamResolver,
    gaps: Iterable[Gap] = (),
    data_through_ms: int,
    top_n: int = 10,
    finalized: bool = False,
) -> ReportDocument:
    """Price, attribute and sum the usage of ``period`` into a document.

    Each bucket is priced by the version in force at its start. Included tokens are consumed in
    time order, per user and tier, before prices apply. Tokens of a tier without a price, or
    before the first version, are counted as unpriced: never as zero cost.
    """
    rows = sorted(
        (r for r in usage if period.contains(r.bucket_start_ms)),
        key=lambda r: (r.bucket_start_ms, r.user, r.tier, r.model, r.token_type, r.extra),
    )
    lines, by_version, used_versions = _price(rows, book, teams)
    currency = book.currency
    ordered = sorted(lines.items(), key=_line_order)
    items = tuple(
        Line(user=user, team=team, tier=tier, model=model, tokens=acc.tokens,
             cost=round_money(acc.exact, currency), unpriced_tokens=acc.unpriced,
             included_tokens=acc.included, token_type=token_type)
        for (user, team, tier, model, token_type), acc in ordered
    )  # fmt: skip
    charges = split_by_version(
        [by_version[key] for key, _ in ordered], items, book, period, currency
    )
    versions = tuple(
        {
            "version": v.number,
            "effectiveFrom": iso(v.effective_from_ms),
            "digest": v.digest,
            "tokensPerUnit": v.spec.tokens_per_unit,
        }
        for _, v in sorted(used_versions.items())
    )
    overlapping = tuple(
        g for g in gaps if g.start_ms < period.end_ms and g.end_ms > period.start_ms
    )
    return ReportDocument(
        report=report,
        period=period,
        currency=currency,
        lines=items,
        gaps=overlapping,
        pricing_versions=versions,
        data_through_ms=data_through_ms,
        finalized=finalized,
        top_n=top_n,
        charges=charges,
    )


LineKey = tuple[str, str, str, str, str]


def _price(
    rows: Iterable[UsageRow], book: PriceBook, teams: TeamResolver
) -> tuple[
    dict[LineKey, Accumulator],
    dict[LineKey, dict[int | None, Accumulator]],
    dict[int, PriceVersion],
]:
    """Lines (rows accumulated in time order), each line by version, and the versions used."""
    lines: dict[LineKey, Accumulator] = defaultdict(Accumulator)
    by_version: dict[LineKey, dict[int | None, Accumulator]] = defaultdict(dict)
    allowance: dict[tuple[str, str], int] = {}
    used_versions: dict[int, PriceVersion] = {}
    prices: dict[tuple[int, str, str, str], Decimal | None] = {}
    for row in rows:
        team = teams.team(row.user, dict(row.extra), row.tier)
        key = (row.user, team, row.tier, row.model, row.token_type)
        version = book.at(row.bucket_start_ms)
        number = version.number if version else None
        parts = (lines[key], by_version[key].setdefault(number, Accumulator()))
        price = _price_of(version, row, prices) if version else None
        if version is None or price is None:
            for acc in parts:
                acc.tokens += row.tokens
                acc.unpriced += row.tokens
            continue
        used_versions[version.number] = version
        if (row.user, row.tier) not in allowance:
            allowance[(row.user, row.tier)] = version.included_tokens(row.tier)
        remaining = allowance[(row.user, row.tier)]
        free = min(remaining, row.tokens)
        allowance[(row.user, row.tier)] = remaining - free
        exact = Decimal(row.tokens - free) * price / version.spec.tokens_per_unit
        for acc in parts:
            acc.tokens += row.tokens
            acc.included += free
            acc.exact += exact
    return lines, by_version, used_versions


def _price_of(
    version: PriceVersion, row: UsageRow, cache: dict[tuple[int, str, str, str], Decimal | None]
) -> Decimal | None:
    """The version's price of the row's tier, model and token type (looked up once each)."""
    key = (version.number, row.tier, row.model, row.token_type)
    if key not in cache:
        cache[key] = version.price(row.tier, row.model, row.token_type)
    return cache[key]


def _line_order(item: tuple[LineKey, Accumulator]) -> tuple[str, ...]:
    user, team, tier, model, token_type = item[0]
    return (team, user, tier, model, TOKEN_TYPE_ORDER.get(token_type, token_type))


TOKEN_TYPE_ORDER = {"input": "0", "cached_input": "1", "output": "2", "total": "3"}
"""Lines of one user, tier and model list input, cached input, output, total, in that order."""
