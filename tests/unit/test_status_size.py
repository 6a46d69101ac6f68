"""Status stays small at any cardinality: 10k users, long names, full history."""

from __future__ import annotations

import json

from chargeback.api.pricing import TierPricingSpec
from chargeback.api.report import Attribution, UsageReportStatus
from chargeback.domain.attribution import TeamResolver
from chargeback.domain.periods import Period
from chargeback.domain.pricing import PriceBook, PriceVersion
from chargeback.domain.reports import build_document
from chargeback.domain.usage import UsageRow
from chargeback.services.reconcile import summarize

HOUR = 3_600_000


def test_status_of_ten_thousand_users_stays_under_64_kib() -> None:
    spec = TierPricingSpec.model_validate(
        {"currency": "USD", "tiers": [{"name": t, "price": "0.01"} for t in ("free", "premium")]}
    )
    rows = [
        UsageRow(
            h * HOUR,
            f"user-{i:05d}-{'x' * 40}",
            ("free", "premium")[i % 2],
            f"model-{i % 80:02d}-{'m' * 30}",
            (("cost_center", f"cc-{i % 300:03d}-team"),),
            1000 + i,
        )
        for i in range(10_000)
        for h in (0, 1)
    ]
    document = build_document(
        report="ns/big",
        period=Period(0, 24 * HOUR),
        usage=rows,
        book=PriceBook([PriceVersion(1, 0, spec)]),
        teams=TeamResolver(Attribution(team_label="cost_center")),
        data_through_ms=24 * HOUR,
        top_n=50,
    ).as_dict()
    finals = [{"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", "tokens": 10**12,
               "cost": "123456789.01"}] * 120  # fmt: skip
    status = summarize(
        document, 50, finals, [f"big-2026010{i}t0000" for i in range(9)], "2026-01-03T00:00:00Z"
    )
    size = len(json.dumps(status).encode())
    assert size < 64 * 1024, size
    assert len(document["lines"]) == 10_000  # the document keeps every user
    UsageReportStatus.model_validate(status)  # and it fits the CRD's bounds
