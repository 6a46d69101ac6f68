"""What the ledger holds, per source: history, watermark, gaps and usage broken down."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from chargeback.adapters.ledger import Ledger
from chargeback.domain import buckets

GROUPINGS = ("user", "tier", "model", "hour")


def _stamp(t_ms: int) -> str:
    return f"{buckets.from_ms(t_ms):%FT%TZ}"


def sources(ledger: Ledger, source_id: str | None, group_by: str) -> list[dict[str, Any]]:
    """Each source (or only ``source_id``) with its usage totals by ``group_by``."""
    records = [r for r in ledger.list_sources() if source_id in (None, r.id)]
    result: list[dict[str, Any]] = []
    for record in records:
        breakdown: dict[str, int] = defaultdict(int)
        for row in ledger.usage(record.id):
            label = (
                f"{buckets.from_ms(row.bucket_start_ms):%FT%H:00Z}"
                if group_by == "hour"
                else getattr(row, group_by)
            )
            breakdown[label] += row.tokens
        result.append({
            "sourceId": record.id,
            "metric": record.metric,
            "start": _stamp(record.start_ms),
            "watermark": _stamp(record.watermark_ms),
            "tokens": sum(breakdown.values()),
            "by": group_by,
            "breakdown": dict(sorted(breakdown.items())),
            "gaps": [{"start": _stamp(g.start_ms), "end": _stamp(g.end_ms), "reason": g.reason}
                     for g in ledger.gaps(record.id)],
        })  # fmt: skip
    return result
