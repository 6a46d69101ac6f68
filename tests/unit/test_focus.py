"""Charges and the FOCUS export: per price version, conserving the report to the cent."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import replace
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from chargeback.api.pricing import TierPricingSpec
from chargeback.domain.formats import DEFAULT_CONTEXT, ExportContext, focus, json_document
from chargeback.domain.money import split_rounded
from chargeback.domain.pricing import PriceVersion
from chargeback.domain.reports import iso
from chargeback.domain.usage import UsageRow
from tests.unit.test_reports import PERIOD, document, usage_rows, versions


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@settings(max_examples=200, deadline=None)
@given(usage_rows, versions())
def test_charges_split_each_line_by_version_and_conserve(
    rows: list[UsageRow], book: list[PriceVersion]
) -> None:
    doc = document(rows, book)
    assert doc.charges is not None
    tokens: dict[int, int] = defaultdict(int)
    cost: dict[int, Decimal] = defaultdict(Decimal)
    for charge in doc.charges:
        tokens[charge.line] += charge.tokens
        cost[charge.line] += charge.cost
        assert PERIOD.start_ms <= charge.start_ms <= charge.end_ms <= PERIOD.end_ms
        if charge.version is not None and charge.tokens > charge.unpriced_tokens:
            assert charge.unit_price is not None
    for index, line in enumerate(doc.lines):
        assert tokens[index] == line.tokens
        assert cost[index] == line.cost
    exported = rows_of(focus.render(doc, DEFAULT_CONTEXT))
    assert len(exported) == len(doc.charges)
    assert sum(Decimal(r["BilledCost"]) for r in exported) == doc.cost
    assert sum(int(r["ConsumedQuantity"]) for r in exported) == doc.tokens
    for r in exported:
        assert r["BilledCost"] == r["EffectiveCost"] == r["ListCost"] == r["ContractedCost"]
        assert (r["BillingPeriodStart"], r["BillingPeriodEnd"]) == (
            iso(PERIOD.start_ms), iso(PERIOD.end_ms))  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(usage_rows, versions())
def test_focus_of_a_stored_document_is_byte_identical(
    rows: list[UsageRow], book: list[PriceVersion]
) -> None:
    """A finalised period is stored as JSON; its FOCUS file re-renders byte for byte."""
    doc = document(rows, book)
    back = json_document.parse(json_document.render(doc))
    context = ExportContext(provider="Platform", invoice_issuer="Finance", service="Inference")
    assert focus.render(back, context) == focus.render(doc, context)
    # A document finalised before charges existed: one row per line, the same total.
    old = rows_of(focus.render(replace(doc, charges=None), context))
    assert len(old) == len(doc.lines)
    assert sum(Decimal(r["BilledCost"]) for r in old) == doc.cost


def test_a_price_change_mid_period_gives_two_charges() -> None:
    spec = {"currency": "USD", "tokensPerUnit": 1000,
            "tiers": [{"name": "premium", "price": "0.008"}]}  # fmt: skip
    later = {**spec, "tiers": [{"name": "premium", "price": "0.010"}]}
    hour = 3_600_000
    book = [PriceVersion(1, 0, TierPricingSpec.model_validate(spec)),
            PriceVersion(2, 12 * hour, TierPricingSpec.model_validate(later))]  # fmt: skip
    usage = [UsageRow(h * hour, "alice", "premium", "granite", (), 10_000) for h in range(24)]
    exported = rows_of(focus.render(document(usage, book), ExportContext(provider="P")))
    assert [(r["x_PriceVersion"], r["ChargePeriodStart"], r["ChargePeriodEnd"], r["BilledCost"],
             r["ListUnitPrice"], r["PricingQuantity"], r["PricingUnit"]) for r in exported] == [
        ("1", iso(0), iso(12 * hour), "0.96", "0.008", "120", "1000 Tokens"),
        ("2", iso(12 * hour), iso(24 * hour), "1.20", "0.01", "120", "1000 Tokens"),
    ]  # fmt: skip
    assert exported[0]["ProviderName"] == exported[0]["ServiceProviderName"] == "P"
    assert exported[0]["x_Team"] == exported[0]["SubAccountId"] == "core"


@settings(max_examples=300)
@given(st.lists(st.decimals(min_value=0, max_value=1000, places=6), min_size=1, max_size=8))
def test_rounded_parts_add_up_to_the_rounded_total(exacts: list[Decimal]) -> None:
    total = sum(exacts, Decimal(0)).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
    parts = split_rounded(total, exacts, "USD")
    assert sum(parts, Decimal(0)) == total
    assert all(abs(p - e) < Decimal("0.01") for p, e in zip(parts, exacts, strict=True))
