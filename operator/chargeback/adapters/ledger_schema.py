"""The ledger's tables and their migrations (SQLAlchemy Core).

The schema is versioned: migrations run in order when a ledger is opened, each once. Append a
migration, never edit one: ledgers in the field were created by the old ones.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

metadata = sa.MetaData()
schema_version = sa.Table(
    "schema_version", metadata, sa.Column("version", sa.Integer, nullable=False)
)
sources = sa.Table(
    "sources",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("definition", sa.Text, nullable=False),
    sa.Column("metric", sa.String(200), nullable=False),
    sa.Column("bucket_ms", sa.BigInteger, nullable=False),
    sa.Column("start_ms", sa.BigInteger, nullable=False),
    sa.Column("watermark_ms", sa.BigInteger, nullable=False),
    sa.Column("observing", sa.Boolean, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False, server_default="tokens"),
)
series_state = sa.Table(
    "series_state",
    metadata,
    sa.Column("source_id", sa.String(32), primary_key=True),
    sa.Column("series_key", sa.Text, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
    sa.Column("seen_ms", sa.BigInteger, nullable=False),
)
usage = sa.Table(
    "usage",
    metadata,
    sa.Column("source_id", sa.String(32), nullable=False),
    sa.Column("bucket_start_ms", sa.BigInteger, nullable=False),
    sa.Column("user", sa.String(256), nullable=False),
    sa.Column("tier", sa.String(256), nullable=False),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("extra", sa.Text, nullable=False),
    sa.Column("tokens", sa.BigInteger, nullable=False),
    sa.Column("token_type", sa.String(16), nullable=False, server_default="total"),
    # Keyed by its identity, which leads with (source_id, bucket_start_ms): the key serves the
    # reads by time, and on SQLite the rows are stored in it (no rowid: one B-tree per insert).
    sa.PrimaryKeyConstraint(
        "source_id", "bucket_start_ms", "user", "tier", "model", "extra", "token_type"
    ),
    sqlite_with_rowid=False,
)
gaps = sa.Table(
    "gaps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source_id", sa.String(32), nullable=False),
    sa.Column("start_ms", sa.BigInteger, nullable=False),
    sa.Column("end_ms", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)


price_versions = sa.Table(
    "price_versions",
    metadata,
    sa.Column("pricing", sa.String(253), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("effective_from_ms", sa.BigInteger, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("recorded_ms", sa.BigInteger, nullable=False),
)
documents = sa.Table(
    "report_documents",
    metadata,
    sa.Column("report", sa.String(512), primary_key=True),
    sa.Column("period_start_ms", sa.BigInteger, primary_key=True),
    sa.Column("period_end_ms", sa.BigInteger, nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("csv", sa.Text, nullable=False),
    sa.Column("finalized_ms", sa.BigInteger, nullable=False),
)
gpu_usage = sa.Table(
    "gpu_usage",
    metadata,
    sa.Column("source_id", sa.String(32), nullable=False),
    sa.Column("bucket_start_ms", sa.BigInteger, nullable=False),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("product", sa.String(128), nullable=False),
    sa.Column("gpu_ms", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("source_id", "bucket_start_ms", "model", "product"),
)
gpu_utilization = sa.Table(
    "gpu_utilization",
    metadata,
    sa.Column("source_id", sa.String(32), nullable=False),
    sa.Column("bucket_start_ms", sa.BigInteger, nullable=False),
    sa.Column("model", sa.String(256), nullable=False),
    sa.Column("busy_ms", sa.BigInteger, nullable=False),
    sa.Column("observed_gpu_ms", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("source_id", "bucket_start_ms", "model"),
)


def _migration_1(conn: Connection) -> None:
    for table in (sources, series_state, usage, gaps):
        table.create(conn)


def _migration_2(conn: Connection) -> None:
    for table in (price_versions, documents):
        table.create(conn)


def _migration_3(conn: Connection) -> None:
    for table in (gpu_usage, gpu_utilization):
        table.create(conn)


def _migration_4(conn: Connection) -> None:
    # sources.kind says what a source counts, instead of the GPU source's magic metric "gpu".
    # (A ledger created at this version has the column from migration 1 already.)
    if "kind" not in {c["name"] for c in sa.inspect(conn).get_columns("sources")}:
        conn.execute(sa.text("ALTER TABLE sources ADD COLUMN kind VARCHAR(16) "
                             "DEFAULT 'tokens' NOT NULL"))  # fmt: skip
    conn.execute(sources.update().where(sources.c.metric == "gpu").values(kind="gpu", metric=""))


def _migration_5(conn: Connection) -> None:
    # usage.token_type (input, output, cached_input, total) joins the row's identity; the usage
    # recorded before it is of type total. SQLite cannot change a table's unique constraint, so
    # the table is rebuilt on both engines. (A ledger created at this version has it already.)
    if "token_type" in {c["name"] for c in sa.inspect(conn).get_columns("usage")}:
        return
    conn.execute(sa.text("DROP INDEX usage_by_time"))
    columns = 'source_id, bucket_start_ms, "user", tier, model, extra, tokens'
    _rebuild_usage(conn, f"{columns}, token_type", f"{columns}, 'total'")


def _migration_6(conn: Connection) -> None:
    # usage keyed by its identity instead of a unique constraint beside a rowid and an index on
    # (source_id, bucket_start_ms) that the constraint's prefix already served: one B-tree to
    # write per row on SQLite instead of three. The table is rebuilt on both engines, the rows
    # copied unchanged; the old index and constraint go with the old table. (A ledger created
    # at this version is keyed already.)
    if sa.inspect(conn).get_pk_constraint("usage")["constrained_columns"]:
        return
    columns = 'source_id, bucket_start_ms, "user", tier, model, extra, tokens, token_type'
    _rebuild_usage(conn, columns, columns)


def _rebuild_usage(conn: Connection, columns: str, selected: str) -> None:
    """The usage table created anew as the schema has it, with the old rows copied into it."""
    conn.execute(sa.text("ALTER TABLE usage RENAME TO usage_before"))
    usage.create(conn)
    conn.execute(sa.text(f"INSERT INTO usage ({columns}) "  # noqa: S608
                         f"SELECT {selected} FROM usage_before"))  # fmt: skip
    conn.execute(sa.text("DROP TABLE usage_before"))


MIGRATIONS: list[Callable[[Connection], None]] = [
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,
    _migration_5,
    _migration_6,
]
"""Schema migrations in order; the schema version is the number applied. Append, never edit."""


WAL_RETRIES = 600
"""Attempts, 50 ms apart, to switch a new SQLite ledger to WAL while another process holds it."""


def sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL and NORMAL synchronous on every SQLite connection (listener of the engine)."""
    cursor = dbapi_conn.cursor()
    # WAL is a property of the file: set once. Switching needs an exclusive lock, which SQLite
    # does not wait for, so a process opening a new ledger while another one creates it retries.
    for attempt in itertools.count():
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt >= WAL_RETRIES:
                raise
            time.sleep(0.05)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
