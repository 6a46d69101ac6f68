"""The durable usage ledger (SQLAlchemy Core): SQLite by default, PostgreSQL by DSN.

What it keeps per source: usage per closed bucket and dimensions, per-series counter state, a
watermark (usage is complete up to it) and recorded gaps. One collection step is one
transaction: the watermark moves from ``a`` to ``b`` only if it still is ``a``, so a step re-run
after a crash, or run twice by two processes at once, is counted once. The schema and its
migrations are in ``ledger_schema.py``; they run in order on open.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from chargeback.adapters.ledger_reads import UsageReads
from chargeback.adapters.ledger_schema import (
    MIGRATIONS,
    gaps,
    gpu_usage,
    gpu_utilization,
    schema_version,
    series_state,
    sources,
    sqlite_pragmas,
)
from chargeback.domain.counters import State
from chargeback.domain.infra import GpuRow, UtilizationRow
from chargeback.domain.names import fit
from chargeback.domain.series import SeriesKey, key_from_text, key_text
from chargeback.domain.usage import Gap, UsageRow

LABEL_CHARS = 256
"""The width of the label columns (user, tier, model)."""


class LedgerError(RuntimeError):
    """The ledger cannot be opened or written."""


class StepConflict(LedgerError):
    """Another writer moved the watermark first; this step was not applied (nothing counted)."""


class SourceKind(StrEnum):
    """What a source counts."""

    TOKENS = "tokens"
    """Token counters of a gateway (usage rows)."""
    GPU = "gpu"
    """GPU allocation and utilisation per model (GPU rows)."""


@dataclass(frozen=True)
class SourceRecord:
    """A source as the ledger knows it."""

    id: str
    definition: dict[str, Any]
    metric: str
    """The counter read (token sources); empty for GPU sources."""
    bucket_ms: int
    start_ms: int
    watermark_ms: int
    observing: bool
    kind: SourceKind = SourceKind.TOKENS


@dataclass(frozen=True)
class Step:
    """Everything one collection step writes, applied atomically by :meth:`Ledger.apply_step`."""

    source_id: str
    from_ms: int
    to_ms: int
    usage: list[UsageRow]
    states: dict[SeriesKey, State]
    """Series states to persist: those that left Prometheus' view in this step."""
    drop_states: bool = False
    observing: bool = True
    gap: Gap | None = None
    gpu: list[GpuRow] = field(default_factory=list)
    """GPU allocation of an infrastructure source (instead of token usage)."""
    utilization: list[UtilizationRow] = field(default_factory=list)


@functools.lru_cache(maxsize=4096)
def _extra_text(extra: tuple[tuple[str, str], ...]) -> str:
    # Cached: a step writes tens of thousands of rows sharing a handful of extra-label values.
    values = {name: _label(value) for name, value in sorted(extra)}
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def _label(value: str, limit: int = LABEL_CHARS) -> str:
    """A label value as stored: whole up to ``limit`` characters, else its head and a hash.

    The same on SQLite and PostgreSQL (whose VARCHAR columns would refuse longer values), and
    distinct values stay distinct: tokens are never merged or lost, only a name is shortened.
    """
    return value if len(value) <= limit else fit(value, limit)


class Ledger(UsageReads):
    """Access to one ledger database."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        kwargs: dict[str, Any] = {}
        if dsn in ("sqlite://", "sqlite:///:memory:"):
            # One shared connection, or every pooled connection would see its own empty DB.
            kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        elif dsn.startswith("sqlite"):
            # Writers wait for each other instead of failing; WAL lets readers run meanwhile.
            kwargs["connect_args"] = {"timeout": 30}
        self.engine: Engine = sa.create_engine(dsn, **kwargs)
        if dsn.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", sqlite_pragmas)
        self.migrate()

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()

    def migrate(self) -> int:
        """Apply pending migrations; return the schema version."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                # pysqlite runs DDL outside any transaction: take the write lock first, so a
                # second process opening a new ledger waits instead of seeing half a schema.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            if not sa.inspect(conn).has_table("schema_version"):
                schema_version.create(conn)
                conn.execute(schema_version.insert().values(version=0))
            current = conn.execute(sa.select(schema_version.c.version)).scalar_one()
            if current > len(MIGRATIONS):
                raise LedgerError(
                    f"ledger schema version {current} is newer than this operator "
                    f"({len(MIGRATIONS)}); upgrade the operator"
                )
            if current == len(MIGRATIONS):
                return len(MIGRATIONS)  # up to date: opening the ledger writes nothing
            for number in range(current, len(MIGRATIONS)):
                MIGRATIONS[number](conn)
            conn.execute(schema_version.update().values(version=len(MIGRATIONS)))
            return len(MIGRATIONS)

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def source(self, source_id: str) -> SourceRecord | None:
        """The stored source, or None when it was never collected."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sources).where(sources.c.id == source_id)).first()
        if row is None:
            return None
        return SourceRecord(
            id=row.id,
            definition=json.loads(row.definition),
            metric=row.metric,
            bucket_ms=row.bucket_ms,
            start_ms=row.start_ms,
            watermark_ms=row.watermark_ms,
            observing=row.observing,
            kind=SourceKind(row.kind),
        )

    def list_sources(self) -> list[SourceRecord]:
        """Every source in the ledger."""
        with self.engine.connect() as conn:
            ids = conn.execute(sa.select(sources.c.id).order_by(sources.c.id)).scalars().all()
        return [record for i in ids if (record := self.source(i)) is not None]

    def bootstrap(self, record: SourceRecord, states: dict[SeriesKey, State]) -> SourceRecord:
        """Register a source with its baseline counter states; a no-op if it already exists."""
        try:
            with self._tx() as conn:
                self._insert_source(conn, record, states)
        except sa.exc.IntegrityError:
            pass  # another collector registered it first; theirs stands
        stored = self.source(record.id)
        if stored is None:  # pragma: no cover - just inserted or inserted by the other writer
            raise LedgerError(f"source {record.id} vanished while bootstrapping")
        return stored

    def _insert_source(
        self, conn: Connection, record: SourceRecord, states: dict[SeriesKey, State]
    ) -> None:
        existing = conn.execute(sa.select(sources.c.id).where(sources.c.id == record.id))
        if existing.first() is None:
            conn.execute(
                sources.insert().values(
                    id=record.id,
                    definition=json.dumps(record.definition, sort_keys=True),
                    metric=record.metric,
                    bucket_ms=record.bucket_ms,
                    start_ms=record.start_ms,
                    watermark_ms=record.watermark_ms,
                    observing=record.observing,
                    kind=str(record.kind),
                )
            )
            self._write_states(conn, record.id, states)

    def states(self, source_id: str) -> dict[SeriesKey, State]:
        """Per-series counter state: series key -> (last value, end of the window it was seen)."""
        query = sa.select(series_state.c.series_key, series_state.c.value, series_state.c.seen_ms)
        with self.engine.connect() as conn:
            rows = conn.execute(query.where(series_state.c.source_id == source_id))
            return {key_from_text(key): (value, seen) for key, value, seen in rows}

    def apply_step(self, step: Step) -> None:
        """Apply one collection step atomically; raise StepConflict if the watermark moved."""
        with self._tx() as conn:
            moved = conn.execute(
                sources.update()
                .where(sources.c.id == step.source_id)
                .where(sources.c.watermark_ms == step.from_ms)
                .values(watermark_ms=step.to_ms, observing=step.observing)
            )
            if moved.rowcount != 1:
                raise StepConflict(
                    f"source {step.source_id}: watermark is no longer at {step.from_ms}; "
                    "another collector applied this step"
                )
            if step.usage:
                self._insert_usage(conn, step.source_id, step.usage)
            if step.drop_states:
                conn.execute(
                    series_state.delete().where(series_state.c.source_id == step.source_id)
                )
            self._write_states(conn, step.source_id, step.states)
            if step.gap is not None:
                self._record_gap(conn, step.source_id, step.gap)
            if step.gpu:
                conn.execute(gpu_usage.insert(), [
                    {"source_id": step.source_id, **row.__dict__, "model": _label(row.model),
                     "product": _label(row.product, 128)} for row in step.gpu
                ])  # fmt: skip
            if step.utilization:
                conn.execute(gpu_utilization.insert(), [
                    {"source_id": step.source_id, **row.__dict__, "model": _label(row.model)}
                    for row in step.utilization
                ])  # fmt: skip

    def _insert_usage(self, conn: Connection, source_id: str, rows: list[UsageRow]) -> None:
        # A plain DB-API executemany: tens of thousands of rows per step, no per-row processing
        # beyond fitting a label value that is too long (rare; checked inline, not called).
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        columns = 'source_id, bucket_start_ms, "user", tier, model, extra, tokens, token_type'
        limit = LABEL_CHARS
        conn.exec_driver_sql(
            f"INSERT INTO usage ({columns}) VALUES ({', '.join([mark] * 8)})",  # noqa: S608
            [
                (
                    source_id,
                    start,
                    user if len(user) <= limit else fit(user, limit),
                    tier if len(tier) <= limit else fit(tier, limit),
                    model if len(model) <= limit else fit(model, limit),
                    _extra_text(extra),
                    tokens,
                    token_type,
                )
                for start, user, tier, model, extra, tokens, token_type in rows
            ],
        )

    def _write_states(
        self, conn: Connection, source_id: str, states: dict[SeriesKey, State]
    ) -> None:
        if not states:
            return
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        statement = insert(series_state)
        upsert = statement.on_conflict_do_update(
            index_elements=[series_state.c.source_id, series_state.c.series_key],
            set_={"value": statement.excluded.value, "seen_ms": statement.excluded.seen_ms},
        )
        conn.execute(
            upsert,
            [
                {"source_id": source_id, "series_key": key_text(k), "value": v, "seen_ms": seen}
                for k, (v, seen) in states.items()
            ],
        )

    def _record_gap(self, conn: Connection, source_id: str, gap: Gap) -> None:
        # A gap continuing the previous one with the same reason extends it.
        previous = conn.execute(
            sa.select(gaps)
            .where(gaps.c.source_id == source_id)
            .where(gaps.c.end_ms == gap.start_ms)
            .where(gaps.c.reason == gap.reason)
        ).first()
        if previous is not None:
            conn.execute(gaps.update().where(gaps.c.id == previous.id).values(end_ms=gap.end_ms))
        else:
            conn.execute(
                gaps.insert().values(
                    source_id=source_id, start_ms=gap.start_ms, end_ms=gap.end_ms, reason=gap.reason
                )
            )

    def gpu_usage(self, source_id: str, start_ms: int, end_ms: int) -> list[GpuRow]:
        """GPU allocation of an infrastructure source, buckets starting in [start, end)."""
        query = (
            sa.select(gpu_usage)
            .where(gpu_usage.c.source_id == source_id)
            .where(gpu_usage.c.bucket_start_ms >= start_ms)
            .where(gpu_usage.c.bucket_start_ms < end_ms)
            .order_by(gpu_usage.c.bucket_start_ms, gpu_usage.c.model, gpu_usage.c.product)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [GpuRow(r.bucket_start_ms, r.model, r.product, r.gpu_ms) for r in rows]

    def utilization(self, source_id: str, start_ms: int, end_ms: int) -> list[UtilizationRow]:
        """GPU utilisation integrals of an infrastructure source, buckets in [start, end)."""
        table = gpu_utilization
        query = (
            sa.select(table)
            .where(table.c.source_id == source_id)
            .where(table.c.bucket_start_ms >= start_ms)
            .where(table.c.bucket_start_ms < end_ms)
            .order_by(table.c.bucket_start_ms, table.c.model)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            UtilizationRow(r.bucket_start_ms, r.model, r.busy_ms, r.observed_gpu_ms) for r in rows
        ]

    def gaps(self, source_id: str) -> list[Gap]:
        """Recorded gaps of a source, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(gaps).where(gaps.c.source_id == source_id).order_by(gaps.c.start_ms)
            ).all()
        return [Gap(r.start_ms, r.end_ms, r.reason) for r in rows]
