"""Pricing and reports: conservation, price versions, allowances, rounding, periods."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from chargeback.api.pricing import TierPricingSpec
from chargeback.api.report import Attribution, Team
from chargeback.domain import formats
from chargeback.domain.attribution import UNASSIGNED, TeamResolver, maas_service_account_name
from chargeback.domain.formats import DEFAULT_CONTEXT, json_document
from chargeback.domain.periods import Period, scheduled_period
from chargeback.domain.pricing import PriceBook, PriceVersion
from chargeback.domain.reports import build_document
from chargeback.domain.sections import ForecastSection
from chargeback.domain.usage import Gap, UsageRow

HOUR = 3_600_000
USERS = ["alice", "bob", "carol", "dave"]
TIERS = ["free", "premium", "enterprise", "gold"]  # gold is never priced
MODELS = ["granite", "llama", "mistral"]
prices = st.decimals(min_value=0, max_value=Decimal("0.05"), places=5, allow_nan=False)


@st.composite
def versions(draw: st.DrawFn) -> list[PriceVersion]:
    count = draw(st.integers(1, 3))
    starts = sorted(
        draw(st.lists(st.integers(-5, 30), min_size=count, max_size=count, unique=True))
    )
    unit = draw(st.sampled_from([1, 1000, 1_000_000]))
    result = []
    for number, start in enumerate(starts, 1):
        tiers = []
        for tier in TIERS[:3]:
            models = [
                {"name": m, "price": str(draw(prices))} for m in MODELS if draw(st.booleans())
            ]
            tiers.append(
                {
                    "name": tier,
                    "price": str(draw(prices)),
                    "models": models,
                    "includedTokens": draw(st.sampled_from([0, 0, 500, 5000])),
                }
            )
        currency = draw(st.sampled_from(["USD", "JPY"]))
        spec = TierPricingSpec.model_validate(
            {"currency": currency, "tokensPerUnit": unit, "tiers": tiers}
        )
        result.append(PriceVersion(number, start * HOUR, spec, f"d{number}"))
    currency = result[0].spec.currency
    return [PriceVersion(v.number, v.effective_from_ms,
                         v.spec.model_copy(update={"currency": currency}), v.digest)
            for v in result]  # fmt: skip


usage_rows = st.lists(
    st.builds(
        UsageRow,
        bucket_start_ms=st.integers(0, 23).map(lambda h: h * HOUR),
        user=st.sampled_from(USERS),
        tier=st.sampled_from(TIERS),
        model=st.sampled_from(MODELS),
        extra=st.sampled_from([(), (("cost_center", "cc1"),), (("cost_center", ""),)]),
        tokens=st.integers(0, 200_000),
        token_type=st.just("total"),
    ),
    max_size=60,
)
PERIOD = Period(0, 24 * HOUR)
TEAMS = TeamResolver(
    Attribution(teams=[Team(name="core", users=["alice"])], team_label="cost_center"),
)


def document(rows: list[UsageRow], book: list[PriceVersion]):  # type: ignore[no-untyped-def]
    return build_document(report="ns/r", period=PERIOD, usage=rows, book=PriceBook(book),
                          teams=TEAMS, data_through_ms=PERIOD.end_ms)  # fmt: skip


@settings(max_examples=200)
@given(usage_rows, versions())
def test_every_breakdown_conserves_tokens_and_money(
    rows: list[UsageRow], book: list[PriceVersion]
) -> None:
    doc = document(rows, book)
    assert doc.tokens == sum(r.tokens for r in rows)
    for dimension in ("team", "user", "tier", "model"):
        parts = doc.breakdown(dimension)
        assert sum(p.tokens for p in parts) == doc.tokens
        assert sum(p.cost for p in parts) == doc.cost
    quantum = Decimal(1) if doc.currency == "JPY" else Decimal("0.01")
    assert all(line.cost == line.cost.quantize(quantum) for line in doc.lines)
    assert doc.cost == sum(line.cost for line in doc.lines)
    rendered = doc.as_dict()
    assert rendered["totals"]["tokens"] == sum(line["tokens"] for line in rendered["lines"])
    assert Decimal(rendered["totals"]["cost"]) == sum(
        Decimal(ln["cost"]) for ln in rendered["lines"]
    )


@settings(max_examples=200)
@given(usage_rows, versions())
def test_each_bucket_is_priced_by_the_version_in_force(
    rows: list[UsageRow], book: list[PriceVersion]
) -> None:
    doc = document(rows, book)
    ordered = sorted(book, key=lambda v: v.effective_from_ms)
    exact: dict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)
    unpriced: dict[tuple[str, str, str, str], int] = defaultdict(int)
    left: dict[tuple[str, str], int] = {}
    for row in sorted(rows, key=lambda r: (r.bucket_start_ms, r.user, r.tier, r.model, r.extra)):
        team = TEAMS.team(row.user, dict(row.extra))
        key = (row.user, team, row.tier, row.model)
        in_force = [v for v in ordered if v.effective_from_ms <= row.bucket_start_ms]
        tier = (
            next((t for t in in_force[-1].spec.tiers if t.name == row.tier), None)
            if in_force
            else None
        )
        if tier is None:
            unpriced[key] += row.tokens
            continue
        price = next(
            (Decimal(m.price) for m in tier.models if m.name == row.model), Decimal(tier.price)
        )
        remaining = left.setdefault((row.user, row.tier), tier.included_tokens)
        free = min(remaining, row.tokens)
        left[(row.user, row.tier)] = remaining - free
        exact[key] += (row.tokens - free) * price / in_force[-1].spec.tokens_per_unit
    quantum = Decimal(1) if doc.currency == "JPY" else Decimal("0.01")
    for line in doc.lines:
        key = (line.user, line.team, line.tier, line.model)
        assert line.cost == exact[key].quantize(quantum, rounding=ROUND_HALF_UP)
        assert line.unpriced_tokens == unpriced[key]


def test_unpriced_usage_is_flagged_never_zero_priced() -> None:
    spec = TierPricingSpec.model_validate(
        {"currency": "USD", "tiers": [{"name": "free", "price": "1"}]}
    )
    rows = [
        UsageRow(HOUR, "bob", "gold", "llama", (), 5000),
        UsageRow(HOUR, "bob", "free", "llama", (), 2000),
    ]
    doc = document(rows, [PriceVersion(1, 0, spec)])
    assert doc.unpriced_tokens == 5000
    assert doc.tokens == 7000
    assert doc.cost == Decimal("2.00")
    gold = next(line for line in doc.lines if line.tier == "gold")
    assert (gold.tokens, gold.unpriced_tokens, gold.cost) == (5000, 5000, Decimal(0))
    # Usage before the first version is unpriced too.
    late = document(rows, [PriceVersion(1, 10 * HOUR, spec)])
    assert late.unpriced_tokens == 7000


def test_half_up_rounding_once_per_line() -> None:
    spec = TierPricingSpec.model_validate(
        {"currency": "USD", "tokensPerUnit": 1000, "tiers": [{"name": "free", "price": "0.005"}]}
    )
    # 1000 tokens in each of three buckets at $0.005 / 1K: 0.015 exact -> 0.02 (not 3 x 0.01).
    rows = [UsageRow(h * HOUR, "bob", "free", "m", (), 1000) for h in range(3)]
    assert document(rows, [PriceVersion(1, 0, spec)]).cost == Decimal("0.02")


def test_team_attribution_order_and_maas_names() -> None:
    assert maas_service_account_name("tgitelma@redhat.com") == "tgitelma-redhat-com-dd264a84"
    teams = TeamResolver(
        Attribution(teams=[Team(name="core", users=["tgitelma@redhat.com"])],
                    team_label="cost_center", openshift_groups=True, group_prefix="team-"),
        groups={"team-ml": ["erin@example.com"], "admins": ["frank@example.com"]},
    )  # fmt: skip
    assert teams.team("tgitelma-redhat-com-dd264a84", {"cost_center": "cc9"}) == "core"
    assert teams.team("someone", {"cost_center": "cc9"}) == "cc9"
    assert teams.team(maas_service_account_name("erin@example.com"), {}) == "team-ml"
    assert teams.team(maas_service_account_name("frank@example.com"), {}) == UNASSIGNED


def utc(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp() * 1000)


def test_periods_follow_the_time_zone_and_dst() -> None:
    # 2026-03-29: Paris springs forward; that day is 23 hours long.
    day = scheduled_period(utc(2026, 3, 29, 12), "daily", "Europe/Paris")
    assert day == Period(utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert day.end_ms - day.start_ms == 23 * HOUR
    month = scheduled_period(utc(2026, 2, 10), "monthly", "America/New_York")
    assert month == Period(utc(2026, 2, 1, 5), utc(2026, 3, 1, 5))
    week = scheduled_period(utc(2026, 1, 1, 12), "weekly", "UTC")  # a Thursday
    assert week == Period(utc(2025, 12, 29), utc(2026, 1, 5))
    december = scheduled_period(utc(2026, 12, 31, 23), "monthly", "UTC")
    assert december == Period(utc(2026, 12, 1), utc(2027, 1, 1))


@settings(max_examples=100)
@given(usage_rows, versions(), st.integers(0, 30), st.booleans())
def test_a_stored_document_reads_back_to_the_same_renditions(
    rows: list[UsageRow], book: list[PriceVersion], through_hours: int, finalized: bool
) -> None:
    """What the ledger stores (JSON) gives back every format byte for byte."""
    forecast: ForecastSection = {
        "available": False, "period": {"start": "1970-01-02T00:00:00Z",
        "end": "1970-01-03T00:00:00Z"}, "history": {"start": "1970-01-01T00:00:00Z",
        "end": "1970-01-01T00:00:00Z", "days": 0}, "interval": "80%",
        "reason": "not enough history",
    }  # fmt: skip
    doc = replace(
        build_document(report="ns/r", period=PERIOD, usage=rows, book=PriceBook(book),
                       teams=TEAMS, data_through_ms=through_hours * HOUR,
                       gaps=[Gap(HOUR, 2 * HOUR, "scrape gap")], top_n=3),
        finalized=finalized, cost_to_value={"available": False, "reason": "GPU costs off"},
        forecast=forecast,
        scope=("team-a", 'tier="premium"') if finalized else None,
    )  # fmt: skip
    stored = json_document.render(doc)
    back = json_document.parse(stored)
    assert json_document.render(back) == stored
    for fmt in formats.formats():
        assert fmt.render(back, DEFAULT_CONTEXT) == fmt.render(doc, DEFAULT_CONTEXT)
    assert (back.tokens, back.cost, back.unpriced_tokens) == (doc.tokens, doc.cost,
                                                              doc.unpriced_tokens)  # fmt: skip
