"""Ledgers made by older versions open and migrate, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from chargeback.adapters.ledger import Ledger, SourceKind, SourceRecord
from chargeback.adapters.ledger_schema import MIGRATIONS, schema_version, sources
from chargeback.domain.usage import UsageRow


def _ledger_at_version_3(dsn: str) -> None:
    """A ledger as the version before `sources.kind` made it, with a GPU and a token source."""
    engine = sa.create_engine(dsn)
    with engine.begin() as conn:
        schema_version.create(conn)
        conn.execute(schema_version.insert().values(version=3))
        conn.exec_driver_sql(
            "CREATE TABLE sources (id VARCHAR(32) PRIMARY KEY, definition TEXT NOT NULL, "
            "metric VARCHAR(200) NOT NULL, bucket_ms BIGINT NOT NULL, start_ms BIGINT NOT NULL, "
            "watermark_ms BIGINT NOT NULL, observing BOOLEAN NOT NULL)"
        )
        for number in (1, 2):  # the other tables of versions 1-3, as they were
            MIGRATIONS[number](conn)
        old = sa.MetaData()
        for table in ("series_state", "gaps"):
            sources.metadata.tables[table].to_metadata(old).create(conn)
        _usage_before_token_types(conn)
        conn.execute(sa.text(
            "INSERT INTO sources VALUES ('gpu1', '{}', 'gpu', 3600000, 0, 7200000, true), "
            "('tok1', '{}', 'tokens_total', 3600000, 0, 3600000, true)"
        ))  # fmt: skip
    engine.dispose()


def _usage_before_token_types(conn: sa.Connection) -> None:
    """The usage table of versions 1-4."""
    conn.exec_driver_sql(
        "CREATE TABLE usage (source_id VARCHAR(32) NOT NULL, bucket_start_ms BIGINT NOT NULL, "
        '"user" VARCHAR(256) NOT NULL, tier VARCHAR(256) NOT NULL, model VARCHAR(256) NOT NULL, '
        "extra TEXT NOT NULL, tokens BIGINT NOT NULL, "
        'UNIQUE (source_id, bucket_start_ms, "user", tier, model, extra))'
    )
    conn.exec_driver_sql("CREATE INDEX usage_by_time ON usage (source_id, bucket_start_ms)")


def _tables_but_usage(conn: sa.Connection, version: int) -> None:
    """A ledger at ``version`` (4 or later) as far as every table but usage goes."""
    schema_version.create(conn)
    conn.execute(schema_version.insert().values(version=version))
    for number in (1, 2):
        MIGRATIONS[number](conn)
    old = sa.MetaData()
    for table in ("sources", "series_state", "gaps"):
        sources.metadata.tables[table].to_metadata(old).create(conn)


def _dsn(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_version_4_usage_is_of_type_total(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    dsn = _dsn(backend, tmp_path, request)
    engine = sa.create_engine(dsn)
    with engine.begin() as conn:
        _tables_but_usage(conn, version=4)
        _usage_before_token_types(conn)
        conn.exec_driver_sql(
            "INSERT INTO usage VALUES ('tok1', 0, 'alice', 'free', 'granite', '{}', 42), "
            "('tok1', 3600000, 'bob', 'premium', 'granite', '{\"cost_center\":\"cc1\"}', 7)"
        )
    engine.dispose()
    ledger = Ledger(dsn)
    try:
        assert ledger.migrate() == len(MIGRATIONS)
        rows = ledger.usage("tok1")
        assert [(r.user, r.tokens, r.token_type, r.extra) for r in rows] == [
            ("alice", 42, "total", ()),
            ("bob", 7, "total", (("cost_center", "cc1"),)),
        ]
        # The same dimensions may now hold input and output beside the total.
        step_rows = [UsageRow(0, "alice", "free", "granite", (), 5, kind)
                     for kind in ("input", "output")]  # fmt: skip
        with ledger.engine.begin() as conn:
            ledger._insert_usage(conn, "tok1", step_rows)
        assert sorted(r.token_type for r in ledger.usage("tok1", 0, 1)) == [
            "input",
            "output",
            "total",
        ]
    finally:
        ledger.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_version_3_ledger_gets_source_kinds(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    dsn = _dsn(backend, tmp_path, request)
    _ledger_at_version_3(dsn)
    ledger = Ledger(dsn)
    try:
        assert ledger.migrate() == len(MIGRATIONS) == 6
        gpu, tokens = ledger.source("gpu1"), ledger.source("tok1")
        assert gpu is not None
        assert tokens is not None
        assert (gpu.kind, gpu.metric, gpu.watermark_ms) == (SourceKind.GPU, "", 7_200_000)
        assert (tokens.kind, tokens.metric) == (SourceKind.TOKENS, "tokens_total")
        # New sources keep their kind.
        ledger.bootstrap(SourceRecord("gpu2", {}, "", 3_600_000, 0, 0, True, SourceKind.GPU), {})
        stored = ledger.source("gpu2")
        assert stored is not None
        assert stored.kind is SourceKind.GPU
    finally:
        ledger.close()
    again = Ledger(dsn)  # opening a migrated ledger changes nothing
    try:
        assert [s.id for s in again.list_sources()] == ["gpu1", "gpu2", "tok1"]
    finally:
        again.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_version_5_usage_is_keyed_by_its_identity(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    dsn = _dsn(backend, tmp_path, request)
    engine = sa.create_engine(dsn)
    with engine.begin() as conn:
        _tables_but_usage(conn, version=5)
        conn.exec_driver_sql(  # the usage table of version 5: a rowid, a constraint, an index
            "CREATE TABLE usage (source_id VARCHAR(32) NOT NULL, bucket_start_ms BIGINT NOT NULL, "
            '"user" VARCHAR(256) NOT NULL, tier VARCHAR(256) NOT NULL, '
            "model VARCHAR(256) NOT NULL, extra TEXT NOT NULL, tokens BIGINT NOT NULL, "
            "token_type VARCHAR(16) DEFAULT 'total' NOT NULL, "
            'UNIQUE (source_id, bucket_start_ms, "user", tier, model, extra, token_type))'
        )
        conn.exec_driver_sql("CREATE INDEX usage_by_time ON usage (source_id, bucket_start_ms)")
        conn.exec_driver_sql(
            "INSERT INTO usage VALUES ('tok1', 0, 'alice', 'free', 'granite', '{}', 42, 'input'), "
            "('tok1', 0, 'alice', 'free', 'granite', '{}', 9, 'output'), "
            "('tok1', 3600000, 'bob', 'premium', 'granite', '{\"cost_center\":\"cc1\"}', 7, "
            "'total')"
        )
    engine.dispose()
    ledger = Ledger(dsn)
    try:
        assert ledger.migrate() == len(MIGRATIONS)
        assert [(r.bucket_start_ms, r.user, r.tokens, r.token_type, r.extra)
                for r in ledger.usage("tok1")] == [
            (0, "alice", 42, "input", ()),
            (0, "alice", 9, "output", ()),
            (3_600_000, "bob", 7, "total", (("cost_center", "cc1"),)),
        ]  # fmt: skip
        inspector = sa.inspect(ledger.engine)
        key = inspector.get_pk_constraint("usage")["constrained_columns"]
        assert key == ["source_id", "bucket_start_ms", "user", "tier", "model", "extra",
                       "token_type"]  # fmt: skip
        assert inspector.get_indexes("usage") == []
        assert "usage_before" not in inspector.get_table_names()
        if backend == "sqlite":
            with ledger.engine.connect() as conn:
                ddl = conn.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = 'usage'"
                ).scalar_one()
            assert "WITHOUT ROWID" in ddl
        # The identity still refuses a second row: a step is never counted twice.
        again = [UsageRow(0, "alice", "free", "granite", (), 1, "input")]
        with pytest.raises(sa.exc.IntegrityError), ledger.engine.begin() as conn:
            ledger._insert_usage(conn, "tok1", again)
        assert sum(r.tokens for r in ledger.usage("tok1")) == 58
    finally:
        ledger.close()
