"""The ledger's usage reads: rows per bucket, sums per price segment, served hours, days.

Sums are taken in SQL (``GROUP BY`` over a search of the usage table's key, which leads with
source and bucket), so a report over a large ledger moves the summed rows to Python, not every
bucket's.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from chargeback.adapters.ledger_schema import usage
from chargeback.domain.buckets import DAY_MS
from chargeback.domain.usage import UsageRow


class UsageReads:
    """Reads of the usage table (a part of :class:`chargeback.adapters.ledger.Ledger`)."""

    engine: Engine

    def usage(
        self, source_id: str, start_ms: int | None = None, end_ms: int | None = None
    ) -> list[UsageRow]:
        """Usage rows of a source with bucket start in [start_ms, end_ms)."""
        query = sa.select(usage).where(usage.c.source_id == source_id)
        if start_ms is not None:
            query = query.where(usage.c.bucket_start_ms >= start_ms)
        if end_ms is not None:
            query = query.where(usage.c.bucket_start_ms < end_ms)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(usage.c.bucket_start_ms)).all()
        return [
            UsageRow(
                bucket_start_ms=r.bucket_start_ms,
                user=r.user,
                tier=r.tier,
                model=r.model,
                extra=tuple(sorted(json.loads(r.extra).items())),
                tokens=r.tokens,
                token_type=r.token_type,
            )
            for r in rows
        ]

    def usage_by_segment(
        self, source_ids: Sequence[str], start_ms: int, end_ms: int, edges: Sequence[int] = ()
    ) -> list[UsageRow]:
        """Usage of the sources' buckets starting in [start, end), summed in SQL.

        Sums run between ``edges`` (the starts of price versions): each row is dated at the start
        of its segment, so it is priced by the version of all its buckets. Tokens are summed per
        user, tier, model, extra labels and token type.
        """
        cuts = [start_ms, *sorted({e for e in edges if start_ms < e < end_ms}), end_ms]
        rows: list[UsageRow] = []
        with self.engine.connect() as conn:
            # One GROUP BY per segment: each scans its own range of the index.
            for a, b in itertools.pairwise(cuts):
                rows += [
                    UsageRow(bucket_start_ms=a, user=r.user, tier=r.tier, model=r.model,
                             extra=_extra(r.extra), tokens=int(r[-1]), token_type=r.token_type)
                    for r in conn.execute(segment_sums(source_ids, a, b))
                ]  # fmt: skip
        return rows

    def served(self, source_ids: Sequence[str], start_ms: int, end_ms: int) -> set[tuple[str, int]]:
        """(model, bucket start) of every bucket in [start, end) in which a model was used."""
        query = (
            sa.select(usage.c.model, usage.c.bucket_start_ms)
            .distinct()
            .where(usage.c.source_id.in_(list(source_ids)))
            .where(usage.c.bucket_start_ms >= start_ms)
            .where(usage.c.bucket_start_ms < end_ms)
            .where(usage.c.tokens > 0)
        )
        with self.engine.connect() as conn:
            return {(m, int(b)) for m, b in conn.execute(query)}

    def daily_usage(
        self, source_ids: Sequence[str], start_ms: int, end_ms: int
    ) -> list[tuple[int, str, str, int]]:
        """(UTC day, model, tier, tokens) of the sources' buckets starting in [start, end).

        Summed in SQL, all token types together (they never overlap).
        """
        day = (usage.c.bucket_start_ms // DAY_MS) * DAY_MS
        query = (
            sa.select(day.label("day"), usage.c.model, usage.c.tier, sa.func.sum(usage.c.tokens))
            .where(usage.c.source_id.in_(list(source_ids)))
            .where(usage.c.bucket_start_ms >= start_ms)
            .where(usage.c.bucket_start_ms < end_ms)
            .group_by(day, usage.c.model, usage.c.tier)
        )
        with self.engine.connect() as conn:
            return [(int(d), m, t, int(n)) for d, m, t, n in conn.execute(query)]


def segment_sums(source_ids: Sequence[str], start_ms: int, end_ms: int) -> sa.Select[Any]:
    """Tokens of [start, end) summed per user, tier, model, extra labels and token type.

    The query of :meth:`UsageReads.usage_by_segment` for one segment (its plan is checked in
    tests: a search of the usage table's key).
    """
    keys = [usage.c.user, usage.c.tier, usage.c.model, usage.c.extra, usage.c.token_type]
    return (
        sa.select(*keys, sa.func.sum(usage.c.tokens))
        .where(usage.c.source_id.in_(list(source_ids)))
        .where(usage.c.bucket_start_ms >= start_ms)
        .where(usage.c.bucket_start_ms < end_ms)
        .group_by(*keys)
    )


@functools.lru_cache(maxsize=4096)
def _extra(text: str) -> tuple[tuple[str, str], ...]:
    # Cached: the rows of a report share a handful of extra-label values.
    return tuple(sorted(json.loads(text).items()))
