"""Cost-to-value in `chargeback report`: GPU costs and margins computed by hand from the truth."""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import SERVING, Traffic
from tests.integration.test_report import (
    END,
    PRICES_V1,
    START,
    hand_priced,
    pricing_doc,
    run,
    write_report,
)

DEFAULT_RATE = "1.10"
RATES = {"NVIDIA-L40S": "1.50", "NVIDIA-A100-SXM4-80GB": "2.90", "NVIDIA-H100-80GB-HBM3": "4.25"}
FIXED = {"llama-3-70b": "744.00", "deepseek-r1": "1000.00"}
JANUARY_MS = 31 * 24 * 3_600_000
CENT = Decimal("0.01")


def infra_pricing() -> dict[str, Any]:
    doc = pricing_doc(PRICES_V1, None)
    doc["spec"]["infrastructure"] = {
        "gpuHour": DEFAULT_RATE,
        "gpuProducts": [{"name": n, "gpuHour": r} for n, r in RATES.items()],
        "models": [{"name": n, "monthly": m} for n, m in FIXED.items()],
    }
    return doc


def hand_costs(traffic: Traffic) -> dict[str, Decimal]:
    """Infrastructure cost per model over the day, from the serving truth, rounded once."""
    exact: dict[str, Decimal] = defaultdict(Decimal)
    for (model, product, bucket), gpu_ms in traffic.serving.gpu_ms.items():
        if START <= bucket < END:
            exact[model] += Decimal(gpu_ms) * Decimal(RATES.get(product, DEFAULT_RATE)) / 3_600_000
    for model, monthly in FIXED.items():
        exact[model] += Decimal(monthly) * (END - START) / JANUARY_MS
    return {m: v.quantize(CENT, rounding=ROUND_HALF_UP) for m, v in exact.items()}


@pytest.fixture
def cost_files(tmp_path: Path, traffic: Traffic) -> dict[str, Any]:
    report, team = write_report(tmp_path, traffic)
    pricing = tmp_path / "pricing.yaml"
    pricing.write_text(yaml.safe_dump(infra_pricing()))
    return {"report": report, "pricing": pricing, "team": team}


def test_margins_equal_hand_computed_values(traffic: Traffic, cost_files: dict[str, Any]) -> None:
    pricing = str(cost_files["pricing"])
    result = run("--prometheus-url", traffic.prometheus.url, "--pricing", pricing,
                 "--report", str(cost_files["report"]), "--format", "json",
                 "--gpu-resolution", f"{SERVING.scrape_interval_ms // 1000}s")  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    section = document["costToValue"]
    assert section["available"] is True, section

    want = hand_priced(traffic, cost_files["team"], versioned=False)
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    tokens: dict[str, int] = defaultdict(int)
    for (_, _, _, model), (count, cost, _) in want["lines"].items():
        revenue[model] += Decimal(cost)
        tokens[model] += count
    costs = hand_costs(traffic)
    gpu_ms = traffic.serving.gpu_ms_by_model(START, END)
    by_model = {m["name"]: m for m in section["byModel"]}
    assert set(by_model) == set(costs) | set(revenue)
    for model, entry in by_model.items():
        cost = costs.get(model, Decimal(0))
        assert entry["infrastructureCost"] == str(cost), model
        assert entry["revenue"] == str(revenue.get(model, Decimal("0.00"))), model
        assert entry["margin"] == str(revenue.get(model, Decimal("0.00")) - cost), model
        hours = (Decimal(gpu_ms.get(model, 0)) / 3_600_000).quantize(Decimal("0.001"))
        assert entry["gpuHours"] == str(hours), model
        if tokens.get(model):
            per_million = (cost * 1_000_000 / tokens[model]).quantize(
                Decimal("0.0001"), rounding=ROUND_HALF_UP
            )
            assert entry["costPerMillionTokens"] == str(per_million)  # fmt: skip

    # The model nobody calls is idle capacity: all its GPU-hours idle, its cost not on teams.
    idle = by_model["deepseek-r1"]
    assert idle["tokens"] == 0
    assert idle["idleGpuHours"] == idle["gpuHours"] != "0.000"
    totals = section["totals"]
    assert totals["idleCost"] == idle["infrastructureCost"]
    assert totals["infrastructureCost"] == str(sum(costs.values()))
    assert totals["margin"] == str(Decimal(want["cost"]) - sum(costs.values()))
    # Conservation: team shares plus idle cost add up to the total, to the cent.
    team_costs = sum(Decimal(t["infrastructureCost"]) for t in section["byTeam"])
    assert team_costs + Decimal(totals["idleCost"]) == Decimal(totals["infrastructureCost"])
    assert {t["name"] for t in section["byTeam"]} == {"core", "unassigned"}
    # Utilisation from DCGM: llama runs hot, deepseek idles.
    assert Decimal(by_model["llama-3-70b"]["meanUtilization"]) > 70
    assert Decimal(idle["meanUtilization"]) < 20
    # Three days of history are not enough to forecast: said, not guessed.
    assert document["forecast"]["available"] is False
    assert "complete days" in document["forecast"]["reason"]


def test_missing_infrastructure_metrics_say_why(
    traffic: Traffic, cost_files: dict[str, Any]
) -> None:
    common = ["--prometheus-url", traffic.prometheus.url, "--report", str(cost_files["report"]),
              "--format", "json"]  # fmt: skip
    # Infrastructure costs set, but the serving pods carry another label: no GPU data.
    wrong_label = run(*common, "--pricing", str(cost_files["pricing"]),
                      "--gpu-model-label", "label_app", "--gpu-resolution", "60s")  # fmt: skip
    assert wrong_label.returncode == 0, wrong_label.stderr
    section = json.loads(wrong_label.stdout)["costToValue"]
    assert section["available"] is True
    assert section["totals"]["gpuHours"] == "0.000"
    assert "utilisation unknown" in section["reason"]
    assert "no GPUs allocated to model-serving pods" in section["reason"]
    # No infrastructure costs in the pricing.
    plain = Path(cost_files["pricing"]).with_name("plain.yaml")
    plain.write_text(yaml.safe_dump(pricing_doc(PRICES_V1, None)))
    result = run(*common, "--pricing", str(plain))
    document = json.loads(result.stdout)
    assert document["costToValue"] == {
        "available": False,
        "reason": "the TierPricing sets no spec.infrastructure costs (GPU-hour rates), so "
        "infrastructure cost and margins cannot be computed",
    }
    assert document["totals"]["tokens"] > 0  # the report itself is unaffected
    # Collection switched off.
    off = json.loads(run(*common, "--pricing", str(cost_files["pricing"]), "--no-gpu-costs").stdout)
    assert off["costToValue"]["available"] is False
    assert "switched off" in off["costToValue"]["reason"]
    # A bad resolution is a CLI error naming the option.
    bad = run(*common, "--pricing", str(cost_files["pricing"]), "--gpu-resolution", "7s")
    assert bad.returncode == 2
    assert "multiple of the GPU resolution" in bad.stderr
