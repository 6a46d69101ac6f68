"""Report build from a large ledger against the raw SQL ``GROUP BY``, SQLite and PostgreSQL.

One report period of 1,000,000 usage rows.

The ledger holds one source: 2,500 users x 4 models x 100 hourly buckets. The report build is
what a refresh does once the period is collected: sum the period in SQL per price version
(``Ledger.usage_by_segment``; two versions, the second starting mid-period), then price,
attribute and conserve (``build_document``). Rendering the document as JSON is timed apart.
The baseline is the bare aggregate ``SELECT "user", tier, model, sum(tokens) ... GROUP BY
"user", tier, model`` fetched whole. The per-bucket path (every row to Python; still used
where included tokens need time order) is measured beside them. Alternating, median of 3
rounds.

``python -m benchmarks.report_bench`` rewrites the section of docs/benchmarks.md and the
entries of benchmarks/results.json.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from benchmarks import results
from chargeback.adapters.ledger import Ledger
from chargeback.api.pricing import TierPricingSpec
from chargeback.api.report import Attribution
from chargeback.domain.attribution import TeamResolver
from chargeback.domain.formats import json_document
from chargeback.domain.periods import Period
from chargeback.domain.pricing import PriceBook, PriceVersion
from chargeback.domain.reports import ReportDocument, build_document
from chargeback.domain.usage import UsageRow
from chargeback.testing.postgres import PostgresServer

HOUR_MS = 3_600_000
START = 1_767_225_600_000  # 2026-01-01T00:00:00Z
USERS, MODELS, BUCKETS = 2_500, 4, 100
TIERS = ("free", "premium", "enterprise")
SOURCE = "bench"
TARGET = 2.0
MARKERS = ("<!-- report-bench:start -->", "<!-- report-bench:end -->")
RAW = (
    'SELECT "user", tier, model, sum(tokens) FROM usage WHERE source_id = :source '
    'AND bucket_start_ms >= :start AND bucket_start_ms < :end GROUP BY "user", tier, model'
)


def book() -> PriceBook:
    """Two price versions, the second from the middle of the period."""

    def spec(scale: str) -> TierPricingSpec:
        return TierPricingSpec.model_validate({
            "currency": "USD", "tokensPerUnit": 1000,
            "tiers": [{"name": t, "price": f"0.00{i + 4}{scale}"} for i, t in enumerate(TIERS)],
        })  # fmt: skip

    middle = START + BUCKETS // 2 * HOUR_MS + 1_234_567
    return PriceBook(
        [PriceVersion(1, START, spec("1"), "a"), PriceVersion(2, middle, spec("2"), "b")]
    )


def fill(ledger: Ledger) -> int:
    """Write the rows (in a few large transactions); return how many."""
    count = 0
    for bucket in range(BUCKETS):
        rows = [
            UsageRow(START + bucket * HOUR_MS, f"user{u:05d}", TIERS[u % 3], f"model-{m}", (),
                     1 + (u * 7919 + m * 104729 + bucket * 1299709) % 5000)
            for u in range(USERS) for m in range(MODELS)
        ]  # fmt: skip
        with ledger.engine.begin() as conn:
            ledger._insert_usage(conn, SOURCE, rows)
        count += len(rows)
    return count


def measure(dsn: str) -> dict[str, Any]:
    """Median seconds of the raw GROUP BY, the report build, the per-bucket build, the render.

    The render is the JSON of the report build's document.
    """
    ledger = Ledger(dsn)
    ledger.migrate()
    rows = fill(ledger)
    prices, period = book(), Period(START, START + BUCKETS * HOUR_MS)
    edges = [v.effective_from_ms for v in prices.versions]
    teams = TeamResolver(Attribution())

    def raw() -> None:
        with ledger.engine.connect() as conn:
            params = {"source": SOURCE, "start": period.start_ms, "end": period.end_ms}
            conn.execute(sa.text(RAW), params).all()

    def build(usage: Callable[[], list[UsageRow]]) -> Callable[[], ReportDocument]:
        def run() -> ReportDocument:
            return build_document(report="bench", period=period, usage=usage(), book=prices,
                                  teams=teams, data_through_ms=period.end_ms)  # fmt: skip

        return run

    ours = build(lambda: ledger.usage_by_segment([SOURCE], period.start_ms, period.end_ms, edges))
    per_bucket = build(lambda: ledger.usage(SOURCE, period.start_ms, period.end_ms))
    document = ours()

    def render() -> None:
        json_document.render(document)

    runs: tuple[tuple[str, Callable[[], object]], ...] = (
        ("raw", raw), ("ours", ours), ("per_bucket", per_bucket), ("render", render))  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name, _ in runs}
    for _ in range(3):
        for name, run in runs:
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    ledger.close()
    median = {name: statistics.median(values) for name, values in times.items()}
    return {"rows": rows, **median, "ratio": median["ours"] / median["raw"]}


def run() -> dict[str, dict[str, Any]]:
    """Both engines, each on a fresh ledger."""
    import tempfile  # noqa: PLC0415 - only the benchmark needs a scratch directory

    measured = {}
    with tempfile.TemporaryDirectory(prefix="chargeback-report-bench-") as scratch:
        measured["SQLite"] = measure(f"sqlite:///{scratch}/ledger.db")
    with PostgresServer() as server:
        measured["PostgreSQL"] = measure(server.create_database("bench"))
    return measured


def section(measured: dict[str, dict[str, Any]]) -> str:
    """The docs/benchmarks.md section."""
    lines = "\n".join(
        f"| {engine} | {m['rows']:,} | {m['raw']:.2f} s | {m['ours']:.2f} s | "
        f"**{m['ratio']:.2f}x** | {m['per_bucket']:.2f} s | {m['render']:.2f} s |"
        for engine, m in measured.items()
    )
    return f"""{MARKERS[0]}
## Report build from a 1,000,000-row ledger

One report period of {USERS:,} users x {MODELS} models x {BUCKETS} hourly buckets, two price
versions (the second from mid-period). The report build sums the period in SQL per price version,
prices, attributes and conserves it into the document (lines, breakdowns, charges per version);
rendering that document as JSON is shown apart. The baseline is the bare
`GROUP BY "user", tier, model` of the same rows. Median of 3 alternating rounds.
Target: <= {TARGET}x.

| ledger | usage rows | raw `GROUP BY` | report build | ratio | per-bucket build | JSON render |
|---|---|---|---|---|---|---|
{lines}

Reproduce: `python -m benchmarks.report_bench` (also part of `make bench`).
{MARKERS[1]}"""


def record(measured: dict[str, dict[str, Any]]) -> None:
    """The entries of benchmarks/results.json."""
    results.record([
        results.entry(f"report build, 1M rows, {engine}", m["ours"], "s", m["raw"], TARGET)
        for engine, m in measured.items()
    ])  # fmt: skip


if __name__ == "__main__":
    figures = run()
    record(figures)
    sys.stdout.write(results.write_section(section(figures), MARKERS) + "\n")
