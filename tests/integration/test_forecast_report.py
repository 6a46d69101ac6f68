"""Forecasts in `chargeback report`: weeks of growing traffic in a real Prometheus."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import yaml
from benchmarks.forecast_bench import SCENARIO, daily_by_model

from chargeback.testing.prometheus import PrometheusServer
from chargeback.testing.simulator import simulate
from tests.integration.test_report import PRICES_V1, pricing_doc, run

WEEK_MS = 7 * 86_400_000


def test_weekly_report_forecasts_next_week_per_model_and_tier(tmp_path: Path) -> None:
    scenario = replace(SCENARIO, hours=5 * 7 * 24, users=40)
    sim = simulate(scenario)
    openmetrics = sim.write_openmetrics(tmp_path / "traffic.om")
    report = tmp_path / "report.yaml"
    report.write_text(yaml.safe_dump({
        "apiVersion": "chargeback.dev/v1alpha1", "kind": "UsageReport",
        "metadata": {"name": "weekly", "namespace": "finance"},
        "spec": {"pricingRef": {"name": "maas"}, "schedule": {"interval": "weekly"}},
    }))  # fmt: skip
    pricing = tmp_path / "pricing.yaml"
    priced = pricing_doc(PRICES_V1, "2025-01-01T00:00:00Z")
    priced["spec"]["infrastructure"] = {"gpuHour": "2.00"}
    pricing.write_text(yaml.safe_dump(priced))
    with PrometheusServer(tmp_path / "prometheus", openmetrics=openmetrics) as prometheus:
        result = run("--prometheus-url", prometheus.url, "--pricing", str(pricing),
                     "--report", str(report), "--format", "json",
                     "--at", "2026-01-28T12:00:00Z")  # fmt: skip
        table = run("--prometheus-url", prometheus.url, "--pricing", str(pricing),
                    "--report", str(report), "--at", "2026-01-28T12:00:00Z")  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    section = document["forecast"]
    assert section["available"] is True, section
    assert section["period"] == {"start": "2026-02-02T00:00:00Z", "end": "2026-02-09T00:00:00Z"}
    # History: the complete days before the watermark (end of week 4), after the first day.
    assert section["history"] == {"start": "2026-01-06T00:00:00Z", "end": "2026-02-02T00:00:00Z",
                                  "days": 27}  # fmt: skip
    daily = daily_by_model(sim.observable, 35)
    actual = {model: sum(days[28:35]) for model, days in daily.items()}
    by_model = {m["name"]: m for m in section["byModel"]}
    assert set(by_model) == set(actual)
    for model, entry in by_model.items():
        assert entry["lower"] <= entry["tokens"] <= entry["upper"]
        assert abs(entry["tokens"] - actual[model]) <= 0.10 * actual[model], model
        assert entry["gpuHours"] is None  # no GPU metrics in this Prometheus
    total = section["totals"]
    assert total["lower"] <= sum(actual.values()) <= total["upper"]
    tiers = {(t["model"], t["tier"]) for t in section["byModelTier"]}
    assert {tier for _, tier in tiers} == {"free", "premium", "enterprise"}
    # GPU rates are set, but this Prometheus has no kube-state-metrics: said so, report intact.
    assert document["costToValue"]["available"] is False
    assert "no kube-state-metrics data" in document["costToValue"]["reason"]
    assert table.returncode == 0, table.stderr
    assert "Forecast" in table.stdout
