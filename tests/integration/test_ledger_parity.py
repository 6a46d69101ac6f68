"""SQLite and PostgreSQL ledgers take the same input: label values of any length a gateway emits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from chargeback.adapters.ledger import LABEL_CHARS, Ledger
from chargeback.adapters.prometheus import PrometheusClient, PrometheusSettings
from chargeback.api.source import SourceSpec
from chargeback.services.collect import Collector
from chargeback.testing.prometheus import PrometheusServer
from chargeback.testing.simulator import HOUR_MS

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
LONG = "u" * 300  # a user label longer than the ledger's columns
ALSO_LONG = "u" * 299 + "v"  # the same first 299 characters


def _history() -> str:
    lines = ["# TYPE authorized_hits counter"]
    for user, per_minute in ((LONG, 7), (ALSO_LONG, 11), ("short", 13)):
        for minute in range(0, 180):
            labels = f'user="{user}",tier="free",model="m",cost_center="{"c" * 400}"'
            value = per_minute * minute
            lines.append(
                f"authorized_hits_total{{{labels}}} {value} {(T0 + minute * 60_000) / 1000:.3f}"
            )
    return "\n".join([*lines, "# EOF", ""])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_long_label_values_are_kept_apart_and_counted_exactly(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest,
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:  # fmt: skip
    dsn = (
        f"sqlite:///{tmp_path / 'l.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_dsn")
    )
    prometheus = prometheus_factory(_history())
    client = PrometheusClient(PrometheusSettings(prometheus.url))
    ledger = Ledger(dsn)
    try:
        source = SourceSpec(extra_labels=("cost_center",))
        result = Collector(client, ledger).collect(source, T0, T0 + 3 * HOUR_MS)
        assert result.watermark_ms == T0 + 3 * HOUR_MS
        rows = ledger.usage(result.source_id)
    finally:
        client.close()
        ledger.close()
    by_user: dict[str, int] = {}
    for row in rows:
        by_user[row.user] = by_user.get(row.user, 0) + row.tokens
        assert len(dict(row.extra)["cost_center"]) == LABEL_CHARS
    # Two long users stay two users, each with its exact tokens (179 minutes of increments).
    assert sorted(by_user.values()) == [7 * 179, 11 * 179, 13 * 179]
    long_names = [u for u in by_user if u != "short"]
    assert all(len(u) == LABEL_CHARS for u in long_names)
    assert len(set(long_names)) == 2
