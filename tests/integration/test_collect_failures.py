"""Collection under failure: outages, crashes, bad credentials and bad input never corrupt data."""

from __future__ import annotations

import multiprocessing
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from chargeback.adapters.ledger import Ledger
from chargeback.adapters.ledger_schema import MIGRATIONS
from chargeback.adapters.prometheus import (
    PrometheusAuthError,
    PrometheusClient,
    PrometheusSettings,
    PrometheusUnavailable,
)
from chargeback.api.source import SourceSpec
from chargeback.services.collect import Collector
from chargeback.testing import pki
from chargeback.testing.authproxy import PrometheusProxy, write_token
from chargeback.testing.process import free_port
from chargeback.testing.simulator import HOUR_MS
from tests.integration.conftest import END, T0, Traffic, differences, ledger_totals

SOURCE = SourceSpec()


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "chargeback", *args]


def iso(t_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_ms / 1000))


def test_prometheus_outage_is_an_error_then_caught_up(traffic: Traffic, tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'outage.db'}")
    collector = Collector(traffic.client(), ledger)
    source_id = collector.collect(SOURCE, T0, T0 + 10 * HOUR_MS).source_id
    before = ledger_totals(ledger, source_id)
    traffic.prometheus.stop()
    try:
        with pytest.raises(PrometheusUnavailable, match=r"Prometheus at http://127\.0\.0\.1:\d+ "):
            collector.collect(SOURCE, T0, END)
        record = ledger.source(source_id)
        assert record is not None
        assert record.watermark_ms == T0 + 10 * HOUR_MS
        assert ledger_totals(ledger, source_id) == before
    finally:
        traffic.prometheus.start()
    collector.collect(SOURCE, T0, END)
    assert differences(ledger_totals(ledger, source_id), traffic.sim.truth(T0, END)) == {}


def test_sigkill_at_random_points_never_double_counts(traffic: Traffic, tmp_path: Path) -> None:
    source_file = tmp_path / "source.yaml"
    source_file.write_text(yaml.safe_dump(SOURCE.model_dump(mode="json", by_alias=True)))
    dsn = f"sqlite:///{tmp_path / 'killed.db'}"
    args = cli("collect", "--prometheus-url", traffic.prometheus.url, "--ledger", dsn,
               "--source", str(source_file), "--from", iso(T0), "--to", iso(END))  # fmt: skip
    rng = random.Random(11)
    db = tmp_path / "killed.db"

    readers: list[Ledger] = []

    def watermark() -> int | None:
        if not db.exists():
            return None
        if not readers:
            readers.append(Ledger(dsn))
        records = readers[0].list_sources()
        return records[0].watermark_ms if records else None

    kills = []
    for _ in range(8):
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        before = watermark()
        target = rng.randint(1, 3)  # buckets to let through before the kill
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            now = watermark()
            if now is not None and (before is None or now >= before + target * HOUR_MS):
                time.sleep(rng.uniform(0, 0.05))  # land anywhere, inside a step or between
                break
            time.sleep(0.02)
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        kills.append(watermark())
    # Several kills landed in the middle of the catch-up, at different points.
    mid_run = {w for w in kills if w is not None and T0 < w < END}
    assert len(mid_run) >= 3, kills
    finished = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert finished.returncode == 0, finished.stderr
    assert "complete up to 2026-01-04T00:00:00Z" in finished.stdout
    ledger = Ledger(dsn)
    (record,) = ledger.list_sources()
    assert differences(ledger_totals(ledger, record.id), traffic.sim.truth(T0, END)) == {}


@pytest.fixture
def thanos(traffic: Traffic, tmp_path: Path) -> tuple[PrometheusProxy, Path, Path]:
    ca = pki.make_ca(tmp_path, "service-ca")
    serving = pki.make_serving_cert(ca, tmp_path, "thanos-querier")
    token_file = write_token(tmp_path / "token", "good-token")
    return PrometheusProxy(traffic.prometheus.url, serving, "good-token"), token_file, ca.cert


def test_bearer_token_and_ca_behind_a_proxy(
    traffic: Traffic, thanos: tuple[PrometheusProxy, Path, Path], tmp_path: Path
) -> None:
    proxy, token_file, ca_file = thanos
    with proxy:
        settings = PrometheusSettings(proxy.url, token_file=token_file, ca_file=ca_file)
        ledger = Ledger(f"sqlite:///{tmp_path / 'proxy.db'}")
        collector = Collector(PrometheusClient(settings), ledger)
        result = collector.collect(SOURCE, T0, T0 + 5 * HOUR_MS)
        assert result.steps == 5
        # The token rotates: the file is re-read for every request.
        proxy.token = "rotated-token"
        write_token(token_file, "rotated-token")
        result = collector.collect(SOURCE, T0, T0 + 8 * HOUR_MS)
        assert result.watermark_ms == T0 + 8 * HOUR_MS
        want = traffic.sim.truth(T0, T0 + 8 * HOUR_MS)
        assert differences(ledger_totals(ledger, result.source_id), want) == {}

        write_token(token_file, "stale-token")
        with pytest.raises(PrometheusAuthError, match=r"rejected the credentials with HTTP 401"):
            collector.collect(SOURCE, T0, END)

        other_ca = pki.make_ca(tmp_path, "other-ca")
        wrong_ca = PrometheusSettings(proxy.url, token_file=token_file, ca_file=other_ca.cert)
        with pytest.raises(PrometheusUnavailable, match="TLS verification"):
            Collector(PrometheusClient(wrong_ca), ledger).collect(SOURCE, T0, END)
        assert ledger.source(result.source_id).watermark_ms == T0 + 8 * HOUR_MS  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"selector": 'model!="") or vector(1'}, "is not valid PromQL"),
        ({"selector": 'model="x"} or up{'}, "must be label matchers only"),
        ({"selector": 'a="1" or b="2"'}, "must not use 'or'"),
        ({"metric": "up) or vector(1"}, "metric: String should match pattern"),
        ({"labels": {"user": "bad-label"}}, "labels.user: String should match pattern"),
        ({"metric": "no_such_metric"}, "metric no_such_metric has no series"),
        ({"extraLabels": ["a"] * 9}, "extraLabels: Tuple should have at most 8 items"),
        ({"colour": "blue"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_cli_rejects_bad_sources_and_writes_nothing(
    traffic: Traffic, tmp_path: Path, source: dict[str, object], message: str
) -> None:
    source_file = tmp_path / "source.yaml"
    source_file.write_text(yaml.safe_dump(source))
    db = tmp_path / "bad.db"
    run = subprocess.run(
        cli("collect", "--prometheus-url", traffic.prometheus.url, "--ledger", f"sqlite:///{db}",
            "--source", str(source_file), "--from", iso(T0), "--to", iso(END)),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode != 0
    assert message in run.stderr
    if db.exists():
        assert Ledger(f"sqlite:///{db}").list_sources() == []


def test_cli_names_unreachable_prometheus_and_bad_times(tmp_path: Path) -> None:
    source_file = tmp_path / "source.yaml"
    source_file.write_text("{}\n")
    base = ["--ledger", f"sqlite:///{tmp_path / 'x.db'}", "--source", str(source_file)]
    url = f"http://127.0.0.1:{free_port()}"
    run = subprocess.run(
        cli("collect", "--prometheus-url", url, *base, "--from", iso(T0), "--to", iso(END)),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 1
    assert f"Prometheus at {url} is unreachable" in run.stderr
    run = subprocess.run(
        cli("collect", "--prometheus-url", url, *base, "--from", "2026-01-01T00:00:00"),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 2
    assert "--from" in run.stderr
    assert "has no time zone" in run.stderr


def _open_ledger(path: str) -> int:
    ledger = Ledger(f"sqlite:///{path}")
    version = ledger.migrate()
    ledger.close()
    return version


def test_processes_opening_a_new_ledger_at_once_all_succeed(tmp_path: Path) -> None:
    # pysqlite runs DDL outside transactions: without the write lock taken first, the others
    # saw a schema_version table without its row, or failed to create it a second time.
    with multiprocessing.get_context("fork").Pool(6) as pool:
        for attempt in range(5):
            path = str(tmp_path / f"ledger-{attempt}.db")
            assert pool.map(_open_ledger, [path] * 6) == [len(MIGRATIONS)] * 6


def test_a_querier_without_build_info_is_probed_and_collected(
    traffic: Traffic, tmp_path: Path
) -> None:
    # OpenShift's tenancy port (prom-label-proxy) serves queries but no /api/v1/status/*.
    with PrometheusProxy(traffic.prometheus.url) as proxy:
        proxy.fault = "tenancy"
        client = PrometheusClient(PrometheusSettings(proxy.url))
        assert client.check_build() == "unknown"
        assert (
            client.semantics() == "build unknown: range edges closed, no anchored ranges (probed)"
        )
        ledger = Ledger(f"sqlite:///{tmp_path / 'tenancy.db'}")
        result = Collector(client, ledger).collect(SOURCE, T0, T0 + 6 * HOUR_MS)
    assert result.watermark_ms == T0 + 6 * HOUR_MS
    want = traffic.sim.truth(T0, T0 + 6 * HOUR_MS)
    assert differences(ledger_totals(ledger, result.source_id), want) == {}
