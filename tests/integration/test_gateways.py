"""Gateway presets on real Prometheus: Envoy AI Gateway, Kong and vLLM counters, read with only
`source.preset`, priced per token type, exact against the simulator's truth and to the cent
against prices applied by hand; a total or reasoning count beside its parts is never billed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from chargeback.testing import gateways
from chargeback.testing.gateways import ENVOY, KONG, PLAN, VLLM, Gateway
from chargeback.testing.prometheus import PrometheusServer
from chargeback.testing.simulator import HOUR_MS
from tests.integration.conftest import T0, Traffic

START, END = T0 + 24 * HOUR_MS, T0 + 48 * HOUR_MS
UNIT = 1000
# Per 1K tokens. llama-3-70b overrides the output price only: its input and cached input take
# the plan's; the plan prices no total, so a total read by mistake would show as unpriced.
PLAN_PRICES = {"input": "0.003", "output": "0.015", "cached_input": "0.0003"}
OUTPUT_OVERRIDE = ("llama-3-70b", "0.06")


def price(model: str, token_type: str) -> Decimal:
    if (model, token_type) == (OUTPUT_OVERRIDE[0], "output"):
        return Decimal(OUTPUT_OVERRIDE[1])
    return Decimal(PLAN_PRICES[token_type])


def report(prometheus: PrometheusServer, tmp_path: Path, preset: str) -> dict[str, Any]:
    """`chargeback report --format json` of a report whose source is only a preset."""
    override = {"name": OUTPUT_OVERRIDE[0], "outputPrice": OUTPUT_OVERRIDE[1]}
    tier = {"name": PLAN, "inputPrice": PLAN_PRICES["input"],
            "outputPrice": PLAN_PRICES["output"],
            "cachedInputPrice": PLAN_PRICES["cached_input"], "models": [override]}  # fmt: skip
    pricing = {"apiVersion": "chargeback.dev/v1alpha1", "kind": "TierPricing",
               "metadata": {"name": "gateway"},
               "spec": {"currency": "USD", "tokensPerUnit": UNIT, "tiers": [tier]}}  # fmt: skip
    usage = {"apiVersion": "chargeback.dev/v1alpha1", "kind": "UsageReport",
             "metadata": {"name": preset, "namespace": "finance"},
             "spec": {"pricingRef": {"name": "gateway"}, "source": {"preset": preset},
                      "period": {"start": "2026-01-02T00:00:00Z",
                                 "end": "2026-01-03T00:00:00Z"}}}  # fmt: skip
    (tmp_path / "pricing.yaml").write_text(yaml.safe_dump(pricing))
    (tmp_path / "report.yaml").write_text(yaml.safe_dump(usage))
    run = subprocess.run([sys.executable, "-m", "chargeback", "report", "--prometheus-url",
                          prometheus.url, "--pricing", str(tmp_path / "pricing.yaml"),
                          "--report", str(tmp_path / "report.yaml"), "--no-gpu-costs",
                          "--format", "json"], capture_output=True, text=True, timeout=300,
                         check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    document: dict[str, Any] = json.loads(run.stdout)
    return document


def shown(document: dict[str, Any]) -> dict[tuple[str, str, str, str], int]:
    totals: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for line in document["lines"]:
        totals[(line["user"], line["tier"], line["model"], line["tokenType"])] += line["tokens"]
    return dict(totals)


CASES = [
    pytest.param(ENVOY, "prometheus3", id="envoy-ai-gateway-prometheus3"),
    pytest.param(ENVOY, "prometheus", id="envoy-ai-gateway-prometheus2"),
    pytest.param(KONG, "prometheus3", id="kong"),
    pytest.param(VLLM, "prometheus3", id="vllm"),
]


@pytest.mark.parametrize(("gateway", "program"), CASES)
def test_gateway_preset_is_exact_and_priced_per_token_type(
    traffic: Traffic, prometheus_factory: Callable[..., PrometheusServer], tmp_path: Path,
    gateway: Gateway, program: str,
) -> None:  # fmt: skip
    path = tmp_path / f"{gateway.name}.om"
    path.write_text("\n".join(gateways.openmetrics(traffic.sim, gateway)) + "\n")
    document = report(prometheus_factory(path, program=program), tmp_path, gateway.name)

    truth = gateways.truth(traffic.sim, gateway, START, END)
    assert shown(document) == truth
    kinds = {kind for *_, kind in truth}
    assert kinds == set(gateway.types.values())  # e.g. no total beside input and output
    # Every line priced by hand: tokens x the most specific price, rounded half up per line.
    assert document["totals"]["unpricedTokens"] == 0
    for line in document["lines"]:
        exact = line["tokens"] * price(line["model"], line["tokenType"]) / UNIT
        assert Decimal(line["cost"]) == exact.quantize(Decimal("0.01"), ROUND_HALF_UP), line
    total = sum((Decimal(line["cost"]) for line in document["lines"]), Decimal(0))
    assert Decimal(document["totals"]["cost"]) == total
    by_type = {row["name"]: row["tokens"] for row in document["byTokenType"]}
    assert by_type == {k: sum(v for key, v in truth.items() if key[3] == k) for k in kinds}
    # The ignored counts were exported and are not billed: the tokens are input plus output.
    exported = {series.kind for series in gateways.exported(traffic.sim, gateway)}
    assert set(gateway.ignored) <= exported
    assert document["totals"]["tokens"] == sum(truth.values())
