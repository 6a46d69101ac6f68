"""Price versions and finalised report documents, in the same database as the usage.

Versions are append-only; a finalised document is stored once and never changed (the first
writer's bytes stand).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from chargeback.adapters.ledger import Ledger, LedgerError
from chargeback.adapters.ledger_schema import documents, price_versions


@dataclass(frozen=True)
class StoredVersion:
    """A price version as recorded."""

    pricing: str
    version: int
    effective_from_ms: int
    spec: dict[str, Any]
    digest: str


@dataclass(frozen=True)
class FinalDocument:
    """A finalised report document: stored once, never changed."""

    report: str
    period_start_ms: int
    period_end_ms: int
    document: str
    csv: str
    finalized_ms: int


class PricingLedger:
    """Price versions and finalised documents, in the same database as the usage."""

    def __init__(self, ledger: Ledger) -> None:
        self.engine = ledger.engine

    def record_version(
        self, pricing: str, spec: dict[str, Any], digest: str, effective_from_ms: int, now_ms: int
    ) -> StoredVersion:
        """Record ``spec`` as a new version unless it equals the latest one; return the latest."""
        with self.engine.begin() as conn:
            latest = conn.execute(
                sa.select(price_versions)
                .where(price_versions.c.pricing == pricing)
                .order_by(price_versions.c.version.desc())
                .limit(1)
            ).first()
            if latest is not None and latest.digest == digest:
                return _stored(latest)
            number = 1 if latest is None else latest.version + 1
            conn.execute(
                price_versions.insert().values(
                    pricing=pricing, version=number, effective_from_ms=effective_from_ms,
                    spec=json.dumps(spec, sort_keys=True), digest=digest, recorded_ms=now_ms,
                )
            )  # fmt: skip
        return StoredVersion(pricing, number, effective_from_ms, spec, digest)

    def versions(self, pricing: str) -> list[StoredVersion]:
        """Every recorded version of ``pricing``, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(price_versions)
                .where(price_versions.c.pricing == pricing)
                .order_by(price_versions.c.version)
            ).all()
        return [_stored(r) for r in rows]

    def finalize(self, document: FinalDocument) -> FinalDocument:
        """Store a finalised document; if the period was finalised before, keep the first."""
        try:
            with self.engine.begin() as conn:
                conn.execute(documents.insert().values(**document.__dict__))
        except sa.exc.IntegrityError:
            pass  # finalised already (by us before a crash, or by another process): immutable
        stored = self.final(document.report, document.period_start_ms)
        if stored is None:  # pragma: no cover - inserted just now or earlier
            raise LedgerError(f"finalised document of {document.report} vanished")
        return stored

    def final(self, report: str, period_start_ms: int) -> FinalDocument | None:
        """The finalised document of a period, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(documents)
                .where(documents.c.report == report)
                .where(documents.c.period_start_ms == period_start_ms)
            ).first()
        return FinalDocument(**row._mapping) if row is not None else None

    def final_periods(self, report: str, limit: int = 120) -> list[tuple[int, int]]:
        """(start, end) of the most recent finalised periods, newest first, without documents."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(documents.c.period_start_ms, documents.c.period_end_ms)
                .where(documents.c.report == report)
                .order_by(documents.c.period_start_ms.desc())
                .limit(limit)
            ).all()
        return [(row[0], row[1]) for row in rows]

    def finals(self, report: str, limit: int = 120) -> list[FinalDocument]:
        """The most recent finalised documents of a report, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(documents)
                .where(documents.c.report == report)
                .order_by(documents.c.period_start_ms.desc())
                .limit(limit)
            ).all()
        return [FinalDocument(**r._mapping) for r in rows]


def _stored(row: Any) -> StoredVersion:
    return StoredVersion(
        row.pricing, row.version, row.effective_from_ms, json.loads(row.spec), row.digest
    )
