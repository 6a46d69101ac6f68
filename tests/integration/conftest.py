"""Simulated gateway traffic in a real Prometheus, shared by the integration tests."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from chargeback.adapters.ledger import Ledger
from chargeback.adapters.prometheus import PrometheusClient, PrometheusSettings
from chargeback.testing.prometheus import PrometheusServer
from chargeback.testing.serving import (
    Deployment,
    ServingScenario,
    ServingSimulation,
    simulate_serving,
)
from chargeback.testing.simulator import HOUR_MS, Scenario, Simulation, simulate
from chargeback.testing.thanos import ThanosQuerier

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOURS = 72
END = T0 + HOURS * HOUR_MS

SCENARIO = Scenario(
    start_ms=T0,
    hours=HOURS,
    users=200,
    replicas=2,
    scrape_interval_ms=300_000,
    seed=7,
    # Limitador restarts (one just after a scrape, one mid-interval) and a Prometheus outage.
    restarts=((0, T0 + 20 * HOUR_MS + 90_000), (1, T0 + 50 * HOUR_MS + 600_000)),
    scrape_gaps=((T0 + 30 * HOUR_MS + 1_200_000, T0 + 32 * HOUR_MS + 300_000),),
)

SERVING = ServingScenario(
    start_ms=T0,
    hours=HOURS,
    scrape_interval_ms=60_000,
    deployments=(
        # A pod added for a day and removed again, one added mid-bucket, several GPU products,
        # a node without the product label, and a model nobody calls (idle capacity).
        Deployment("granite-3-8b", "NVIDIA-L40S", 1, ((0, None), (24 * HOUR_MS, 40 * HOUR_MS))),
        Deployment("llama-3-70b", "NVIDIA-A100-SXM4-80GB", 4, ((0, None),), utilization=80),
        Deployment("mistral-7b", "NVIDIA-L40S", 1, ((0, None), (10 * HOUR_MS + 1_020_000, None))),
        Deployment("qwen-2-72b", "NVIDIA-H100-80GB-HBM3", 2, ((0, None),), utilization=40),
        Deployment("phi-3-mini", "", 1, ((0, None),)),
        Deployment("deepseek-r1", "NVIDIA-H100-80GB-HBM3", 8, ((30 * HOUR_MS, 60 * HOUR_MS),),
                   utilization=5),
    ),
)  # fmt: skip


@dataclass
class Traffic:
    """The simulations and the Prometheus holding them."""

    sim: Simulation
    serving: ServingSimulation
    prometheus: PrometheusServer
    openmetrics: Path

    def client(self) -> PrometheusClient:
        return PrometheusClient(PrometheusSettings(self.prometheus.url))


@pytest.fixture(scope="session")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    """Three days of 200 users, 3 tiers, 5 models, 2 replicas, with resets and a scrape gap,
    and the GPU serving pods of six models."""
    workdir = tmp_path_factory.mktemp("traffic")
    sim = simulate(SCENARIO)
    serving = simulate_serving(SERVING)
    openmetrics = sim.write_openmetrics(workdir / "traffic.om", serving.openmetrics())
    server = PrometheusServer(workdir / "prometheus", openmetrics=openmetrics)
    with server:
        yield Traffic(sim, serving, server, openmetrics)


@pytest.fixture(scope="session")
def traffic3(traffic: Traffic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    """The same history in Prometheus 3, whose anchored ranges the collector uses."""
    workdir = tmp_path_factory.mktemp("traffic3")
    server = PrometheusServer(
        workdir / "prometheus", openmetrics=traffic.openmetrics, program="prometheus3"
    )
    with server:
        yield Traffic(traffic.sim, traffic.serving, server, traffic.openmetrics)


@pytest.fixture(params=["prometheus2", "prometheus3"])
def any_traffic(request: pytest.FixtureRequest) -> Traffic:
    """The traffic in Debian's Prometheus 2 (per-series path) and in Prometheus 3 (anchored)."""
    name = "traffic" if request.param == "prometheus2" else "traffic3"
    found: Traffic = request.getfixturevalue(name)
    return found


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh ledger on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn


def ledger_totals(ledger: Ledger, source_id: str) -> dict[tuple[str, str, str, int], int]:
    """Tokens per (user, tier, model, bucket start) as stored."""
    totals: dict[tuple[str, str, str, int], int] = defaultdict(int)
    for row in ledger.usage(source_id):
        totals[(row.user, row.tier, row.model, row.bucket_start_ms)] += row.tokens
    return {k: v for k, v in totals.items() if v}


def differences(
    got: dict[tuple[str, str, str, int], int], want: dict[tuple[str, str, str, int], int]
) -> dict[tuple[str, str, str, int], tuple[int, int]]:
    """Keys whose token counts differ, with (got, want)."""
    keys = set(got) | set(want)
    return {k: (got.get(k, 0), want.get(k, 0)) for k in keys if got.get(k, 0) != want.get(k, 0)}


def day_two_report(
    prometheus: PrometheusServer | ThanosQuerier,
    tmp_path: Path,
    pricing: dict[str, Any],
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`chargeback report --format json` of 2026-01-02 (UTC), by the CLI as users run it: a
    UsageReport with only pricingRef, period and (if given) ``source``, priced by ``pricing``."""
    spec: dict[str, Any] = {"pricingRef": {"name": "prices"},
                            "period": {"start": "2026-01-02T00:00:00Z",
                                       "end": "2026-01-03T00:00:00Z"}}  # fmt: skip
    if source is not None:
        spec["source"] = source
    documents = {
        "pricing.yaml": {"apiVersion": "chargeback.dev/v1alpha1", "kind": "TierPricing",
                         "metadata": {"name": "prices"}, "spec": pricing},
        "report.yaml": {"apiVersion": "chargeback.dev/v1alpha1", "kind": "UsageReport",
                        "metadata": {"name": "day", "namespace": "finance"}, "spec": spec},
    }  # fmt: skip
    for name, document in documents.items():
        (tmp_path / name).write_text(yaml.safe_dump(document))
    run = subprocess.run([sys.executable, "-m", "chargeback", "report", "--prometheus-url",
                          prometheus.url, "--pricing", str(tmp_path / "pricing.yaml"),
                          "--report", str(tmp_path / "report.yaml"), "--no-gpu-costs",
                          "--format", "json"], capture_output=True, text=True, timeout=300,
                         check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    result: dict[str, Any] = json.loads(run.stdout)
    return result
