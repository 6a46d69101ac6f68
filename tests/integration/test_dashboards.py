"""Every panel's PromQL runs against the real Prometheus over simulator data, with the
variables substituted ("All" included), and the range panels equal direct computations."""

from __future__ import annotations

import json
import re
import subprocess
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from chargeback.api.pricing import TierPricingSpec
from chargeback.api.source import SourceSpec
from chargeback.domain.dashboards import build_dashboard, grafana, panel_queries
from chargeback.domain.infra import InfraSource
from chargeback.domain.perses import dashboard_spec, perses_dashboard
from chargeback.domain.perses import panel_queries as perses_queries
from chargeback.domain.value_dashboard import boards_of, build_value_dashboard
from chargeback.testing.simulator import HOUR_MS
from chargeback.testing.tools import percli
from tests.integration.conftest import T0, Traffic

AT = T0 + 48 * HOUR_MS
LLAMA = {"name": "llama-3-70b", "price": "0.02"}
PRICING = TierPricingSpec.model_validate({
    "currency": "EUR", "tokensPerUnit": 1000,
    "tiers": [{"name": "free", "price": "0.005"},
              {"name": "premium", "price": "0.008", "models": [LLAMA]},
              {"name": "enterprise", "price": "0.006"}],
})  # fmt: skip


def substitute(expr: str, user: str = ".*") -> str:
    values = {"$__range": "24h", "$__interval": "1h", "$user": user, "$tier": ".*",
              "$model": ".*", "$report": ".*"}  # fmt: skip
    for variable, value in values.items():
        expr = expr.replace(variable, value)
    return re.sub(r"\$[a-z_]+", ".*", expr)  # extra-label variables: All


def value_of(result: list[dict[str, object]]) -> float:
    return sum(float(item["value"][1]) for item in result)  # type: ignore[index]


@pytest.mark.parametrize("user", [".*", "user0001.*"], ids=["all-users", "one-user"])
def test_every_panel_query_runs(traffic: Traffic, user: str) -> None:
    source = SourceSpec(extra_labels=("limitador_namespace",))
    board = build_dashboard("maas", PRICING, source, "authorized_hits")
    assert any(v["name"] == "limitador_namespace" for v in board["templating"]["list"])
    queries = panel_queries(board)
    assert len(queries) >= 15
    for title, expr in queries:
        result = traffic.prometheus.query(substitute(expr, user), at=AT / 1000)  # raises on error
        assert isinstance(result, list), title


def test_range_panels_equal_direct_computations(traffic: Traffic) -> None:
    board = dict(panel_queries(build_dashboard("maas", PRICING, SourceSpec(), "authorized_hits")))
    prom = traffic.prometheus
    direct = prom.query('increase(authorized_hits{model!=""}[24h])', at=AT / 1000)
    total = value_of(direct)
    assert value_of(
        prom.query(substitute(board["Tokens in range"]), at=AT / 1000)
    ) == pytest.approx(total)
    by_tier: dict[str, float] = defaultdict(float)
    cost = Decimal(0)
    prices = {t.name: Decimal(t.price) for t in PRICING.tiers}
    for item in direct:
        labels, tokens = item["metric"], Decimal(item["value"][1])  # type: ignore[index]
        by_tier[labels["tier"]] += float(tokens)  # type: ignore[index]
        price = (
            Decimal("0.02")
            if (labels["tier"], labels["model"]) == ("premium", "llama-3-70b")
            else prices[labels["tier"]]
        )  # type: ignore[index]
        cost += tokens * price / 1000
    panel = {r["metric"]["tier"]: float(r["value"][1])  # type: ignore[index]
             for r in prom.query(substitute(board["Tokens by tier"]), at=AT / 1000)}  # fmt: skip
    assert panel == pytest.approx(dict(by_tier))
    shown = value_of(prom.query(substitute(board["Cost in range (list prices)"]), at=AT / 1000))
    assert Decimal(str(shown)).quantize(Decimal("0.0001")) == cost.quantize(Decimal("0.0001"))


VALUE_PRICING = TierPricingSpec.model_validate({
    **PRICING.model_dump(mode="json", by_alias=True),
    "infrastructure": {
        "gpuHour": "1.10",
        "gpuProducts": [{"name": "NVIDIA-L40S", "gpuHour": "1.50"},
                        {"name": "NVIDIA-H100-80GB-HBM3", "gpuHour": "4.25"}],
        "models": [{"name": "llama-3-70b", "monthly": "744"}],
    },
})  # fmt: skip


def test_value_dashboard_queries_run_and_price_gpus_by_product(traffic: Traffic) -> None:
    infra = InfraSource(resolution_ms=60_000)
    board = build_value_dashboard("maas", VALUE_PRICING, SourceSpec(), "authorized_hits", infra)
    queries = dict(panel_queries(board))
    assert len(queries) == 8
    for title, expr in queries.items():
        result = traffic.prometheus.query(substitute(expr), at=AT / 1000)
        assert isinstance(result, list), title
    cost = {
        item["metric"]["model"]: Decimal(item["value"][1])  # type: ignore[index]
        for item in traffic.prometheus.query(
            substitute(queries["Infrastructure cost by model (per hour)"]), at=AT / 1000
        )
    }
    # At AT: granite 1 L40S pod, llama 4 A100 (default rate) + 744 over January's 744 h,
    # qwen 2 H100,
    # phi 1 GPU on an unlabelled node (default rate), deepseek 8 H100 (idle, running 30-60h).
    assert cost == {
        "granite-3-8b": Decimal("1.5"),
        "llama-3-70b": Decimal("4") * Decimal("1.10") + 1,
        "mistral-7b": Decimal("2") * Decimal("1.5"),
        "qwen-2-72b": Decimal("2") * Decimal("4.25"),
        "phi-3-mini": Decimal("1.1"),
        "deepseek-r1": Decimal("8") * Decimal("4.25"),
    }
    idle = traffic.prometheus.query(
        substitute(queries["Idle GPUs (models serving no tokens in the last hour)"]), at=AT / 1000
    )
    assert {item["metric"]["model"] for item in idle} == {"deepseek-r1"}  # type: ignore[index]


def test_perses_dashboards_have_the_same_panels_lint_clean_and_run(
    traffic: Traffic, tmp_path: Path
) -> None:
    """One definition, two renderings: the Perses dashboards carry the Grafana ones' panels and
    PromQL, pass Perses' own linter (percli), and every query runs on real Prometheus."""
    source = SourceSpec(extra_labels=("limitador_namespace",))
    infra = InfraSource(resolution_ms=60_000)
    boards = boards_of("maas", VALUE_PRICING, source, "authorized_hits", infra)
    assert set(boards) == {"", "-value"}
    for suffix, board in boards.items():
        spec = dashboard_spec(board)
        assert panel_queries(grafana(board)) == perses_queries(spec)  # same panels, same order
        assert [v["spec"]["name"] for v in spec["variables"]] == [v.name for v in board.variables]
        for title, expr in perses_queries(spec):
            result = traffic.prometheus.query(substitute(expr), at=AT / 1000)
            assert isinstance(result, list), title
        path = tmp_path / f"dashboard{suffix}.json"
        path.write_text(json.dumps(perses_dashboard(board, f"chargeback-maas{suffix}", "ai")))
        linted = subprocess.run([str(percli()), "lint", "-f", str(path)], capture_output=True,
                                text=True, check=False)  # fmt: skip
        assert linted.returncode == 0, linted.stdout + linted.stderr
        assert "your resources look good" in linted.stdout
    # The linter is not a rubber stamp: a layout pointing at no panel is refused.
    broken = perses_dashboard(boards[""], "broken", "ai")
    broken["spec"]["layouts"][0]["spec"]["items"][0]["content"]["$ref"] = "#/spec/panels/none"
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    refused = subprocess.run([str(percli()), "lint", "-f", str(tmp_path / "broken.json")],
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert refused.returncode != 0
    assert 'no panel found for ref "none"' in refused.stdout + refused.stderr
