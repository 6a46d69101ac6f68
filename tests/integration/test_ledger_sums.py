"""Reports sum the ledger in SQL: the same document as pricing every bucket, on SQLite and
PostgreSQL, with price versions starting mid-bucket; the sums use the ledger's index."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargeback.adapters.ledger import Ledger
from chargeback.adapters.ledger_reads import segment_sums
from chargeback.api.pricing import TierPricingSpec
from chargeback.api.report import Attribution, Team
from chargeback.api.source import SourceSpec
from chargeback.domain.attribution import TeamResolver
from chargeback.domain.periods import Period
from chargeback.domain.pricing import PriceBook, PriceVersion
from chargeback.domain.reports import build_document
from chargeback.services.collect import Collector
from chargeback.testing.simulator import HOUR_MS
from tests.integration.conftest import END, T0, Traffic

MINUTE_MS = 60_000


def version(number: int, start: int, free: str, premium: str) -> PriceVersion:
    spec = TierPricingSpec.model_validate({
        "currency": "EUR", "tokensPerUnit": 1000,
        "tiers": [{"name": "free", "price": free},
                  {"name": "premium", "price": premium,
                   "models": [{"name": "llama-3-70b", "outputPrice": "0.9", "price": "0.02"}]}],
    })  # fmt: skip
    return PriceVersion(number, start, spec, f"v{number}")


# Versions start mid-bucket and mid-period; enterprise is never priced (unpriced tokens).
BOOK = PriceBook([
    version(1, T0 + 6 * HOUR_MS + 27 * MINUTE_MS, "0.005", "0.008"),
    version(2, T0 + 30 * HOUR_MS + 13 * MINUTE_MS, "0.0051", "0.0079"),
    version(3, T0 + 40 * HOUR_MS, "0.0049", "0.0081"),
])  # fmt: skip


def test_sums_in_sql_price_exactly_as_every_bucket(traffic: Traffic, ledger_dsn: str) -> None:
    ledger = Ledger(ledger_dsn)
    try:
        collected = Collector(traffic.client(), ledger).collect(SourceSpec(), T0, END)
        ids = (collected.source_id,)
        teams = TeamResolver(Attribution(teams=[Team(name="ml", users=["user0001-x"])]))
        edges = [v.effective_from_ms for v in BOOK.versions]
        for period in (Period(T0, END), Period(T0 + 24 * HOUR_MS, T0 + 48 * HOUR_MS)):
            per_bucket = ledger.usage(collected.source_id, period.start_ms, period.end_ms)
            summed = ledger.usage_by_segment(ids, period.start_ms, period.end_ms, edges)
            assert len(summed) < len(per_bucket) / 5  # the point: far fewer rows leave SQL
            documents = [
                build_document(report="r", period=period, usage=rows, book=BOOK, teams=teams,
                               data_through_ms=END).as_dict()
                for rows in (per_bucket, summed)
            ]  # fmt: skip
            assert documents[0] == documents[1]
            assert documents[0]["totals"]["unpricedTokens"] > 0  # before v1, and enterprise
            assert {c["version"] for c in documents[0]["charges"]} >= {1, 2}
        served = ledger.served(ids, T0, END)
        stored = {
            (r.model, r.bucket_start_ms) for r in ledger.usage(collected.source_id) if r.tokens
        }
        assert served == stored
    finally:
        ledger.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sums_read_the_ledger_by_its_index(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    dsn = (
        f"sqlite:///{tmp_path / 'plan.db'}"
        if backend == "sqlite"
        else str(request.getfixturevalue("pg_dsn"))
    )
    ledger = Ledger(dsn)
    try:
        ledger.migrate()
        query = segment_sums(["s"], T0, END)
        statement = str(query.compile(ledger.engine, compile_kwargs={"literal_binds": True}))
        with ledger.engine.connect() as conn:
            if backend == "sqlite":
                rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}").all()
                plan = " ".join(str(r[-1]) for r in rows)
                # A search of the usage table by its key, (source_id, bucket_start_ms, ...).
                assert "SEARCH usage USING PRIMARY KEY (source_id=? AND bucket_start_ms>" in plan
                assert "SCAN" not in plan, plan
            else:
                conn.exec_driver_sql("SET enable_seqscan = off")
                rows = conn.exec_driver_sql(f"EXPLAIN {statement}").all()
                plan = " ".join(str(r[0]) for r in rows)
                assert "Index" in plan, plan
                assert "usage_pkey" in plan, plan
    finally:
        ledger.close()
