"""FOCUS: the FinOps Open Cost and Usage Specification's CSV, for finance.

One row per charge: a user's tokens of one model in one tier (and team) under one price version,
over the part of the period that version was in force (``domain/charges.py``). The columns are
FOCUS 1.2's mandatory ones, 1.3's ServiceProviderName and HostProviderName, the 1.0 columns that
are mandatory but nullable (empty here), and our dimensions as ``x_`` columns.

Costs: BilledCost is the charge's cost after the tier's included tokens, rounded as the report
rounds (the charges of a line add up to its cost, and the rows to the report's total, to the
cent). No discounts or commitments exist in a TierPricing, so ListCost, ContractedCost and
EffectiveCost equal BilledCost; the included tokens are part of the list price, shown in
``x_IncludedTokens``. Tokens without a price cost 0 and are counted in ``x_UnpricedTokens``
(their unit prices are empty). PricingQuantity is in the pricing's unit (e.g. "1000 Tokens").
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from decimal import Decimal

from chargeback.domain.charges import Charge
from chargeback.domain.formats import DEFAULT_CONTEXT, ExportContext, Format
from chargeback.domain.money import format_money
from chargeback.domain.reports import Line, ReportDocument, iso

COLUMNS = (
    # FOCUS 1.2 mandatory columns, then 1.3's two, then 1.0's nullable ones, then ours.
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency",
    "BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory", "ChargeClass",
    "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd", "ChargePeriodStart",
    "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice",
    "EffectiveCost", "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory",
    "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory",
    "ServiceName", "SkuId", "SkuMeter", "SkuPriceId", "SubAccountId", "SubAccountName",
    "ServiceProviderName", "HostProviderName",
    "AvailabilityZone", "CommitmentDiscountCategory", "CommitmentDiscountId",
    "CommitmentDiscountName", "CommitmentDiscountStatus", "CommitmentDiscountType", "RegionId",
    "RegionName", "ResourceId", "ResourceName", "ResourceType", "Tags",
    "x_Report", "x_User", "x_Team", "x_Tier", "x_Model", "x_PriceVersion", "x_Tokens",
    "x_IncludedTokens", "x_UnpricedTokens",
)  # fmt: skip


def charges(document: ReportDocument) -> Iterator[tuple[Line, Charge]]:
    """Each charge with its line; documents finalised before charges existed give one per line."""
    if document.charges is not None:
        for charge in document.charges:
            yield document.lines[charge.line], charge
        return
    versions = document.pricing_versions
    single = versions[0] if len(versions) == 1 else None
    for index, line in enumerate(document.lines):
        yield line, Charge(
            line=index, version=single["version"] if single else None,
            start_ms=document.period.start_ms, end_ms=document.period.end_ms,
            tokens=line.tokens, cost=line.cost, unpriced_tokens=line.unpriced_tokens,
            included_tokens=line.included_tokens, unit_price=None,
            tokens_per_unit=single["tokensPerUnit"] if single else 0,
        )  # fmt: skip


def _quantity(tokens: int, per_unit: int) -> str:
    if not per_unit:
        return ""
    value = (Decimal(tokens) / per_unit).normalize()
    return f"{value:f}"


def row(document: ReportDocument, line: Line, charge: Charge, context: ExportContext) -> list[str]:
    """The FOCUS row of one charge, in COLUMNS order."""
    namespace = document.report.split("/", 1)[0]
    cost = format_money(charge.cost, document.currency)
    price = "" if charge.unit_price is None else f"{charge.unit_price.normalize():f}"
    version = "" if charge.version is None else str(charge.version)
    per_unit = charge.tokens_per_unit
    under = f"price version {version}" if version else "no price version"
    description = (
        f"{charge.tokens} tokens of {line.model} in tier {line.tier} by {line.user} ({under})"
    )
    tags = json.dumps({"chargeback.dev/report": document.report}, sort_keys=True)
    return [
        cost, namespace, namespace, document.currency,
        iso(document.period.end_ms), iso(document.period.start_ms), "Usage", "",
        description, "Usage-Based", iso(charge.end_ms), iso(charge.start_ms),
        str(charge.tokens), "Tokens", cost, price,
        cost, context.invoice_issuer, cost, price, "Standard",
        _quantity(charge.tokens - charge.unpriced_tokens, per_unit),
        f"{per_unit} Tokens" if per_unit else "", context.provider, context.provider,
        "AI and Machine Learning", context.service, f"{line.tier}/{line.model}", "Tokens",
        f"v{version}/{line.tier}/{line.model}" if version else "", line.team, line.team,
        context.provider, context.host_provider,
        "", "", "", "", "", "", "", "", line.model, line.model, "Model", tags,
        document.report, line.user, line.team, line.tier, line.model, version,
        str(charge.tokens), str(charge.included_tokens), str(charge.unpriced_tokens),
    ]  # fmt: skip


def render(document: ReportDocument, context: ExportContext = DEFAULT_CONTEXT) -> str:
    """The document's charges as FOCUS CSV."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for line, charge in charges(document):
        writer.writerow(row(document, line, charge, context))
    return out.getvalue()


FORMAT = Format("focus", "text/csv", render)
