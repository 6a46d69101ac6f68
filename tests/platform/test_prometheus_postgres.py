"""The Prometheus and PostgreSQL fixtures are real: backfilled history answers exact PromQL."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import sqlalchemy as sa

from chargeback.testing.postgres import PostgresServer
from chargeback.testing.prometheus import PrometheusServer

T0 = 1_760_000_000  # a fixed past instant, aligned to the minute


def _history() -> str:
    lines = ["# TYPE authorized_hits counter"]
    for step in range(61):
        ts = T0 + 60 * step
        lines.append(f'authorized_hits_total{{user="alice",tier="free"}} {step * 7} {ts}')
        lines.append(f'authorized_hits_total{{user="bob",tier="premium"}} {step * 11} {ts}')
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def test_backfilled_prometheus_returns_exact_values(
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    prom = prometheus_factory(_history())
    end = T0 + 3600
    last = prom.query('authorized_hits_total{user="alice"}', at=end)
    assert [r["value"][1] for r in last] == ["420"]  # type: ignore[index]
    # The difference of two instant values is exact; this is what the collector builds on.
    delta = prom.query("sum(authorized_hits_total - authorized_hits_total offset 30m)", at=end)
    assert delta[0]["value"][1] == str(30 * (7 + 11))  # type: ignore[index]


def test_prometheus_restart_keeps_history(
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    prom = prometheus_factory(_history())
    prom.stop()
    prom.start()
    assert prom.query("count(authorized_hits_total)", at=T0 + 600)[0]["value"][1] == "2"  # type: ignore[index]


def test_postgres_accepts_sql(pg_dsn: str) -> None:
    engine = sa.create_engine(pg_dsn)
    with engine.begin() as conn:
        version = conn.execute(sa.text("SHOW server_version")).scalar_one()
        conn.execute(sa.text("CREATE TABLE t (x numeric)"))
        conn.execute(sa.text("INSERT INTO t VALUES (0.1), (0.2)"))
        total = conn.execute(sa.text("SELECT sum(x) FROM t")).scalar_one()
    engine.dispose()
    assert str(version).startswith("15")
    assert str(total) == "0.3"


def test_each_test_gets_its_own_database(postgres_server: PostgresServer) -> None:
    first = postgres_server.create_database("isolation_a")
    second = postgres_server.create_database("isolation_b")
    assert first != second
    with psycopg.connect(first.replace("postgresql+psycopg", "postgresql")) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("isolation_a",)
