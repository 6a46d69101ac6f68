"""Every panel's PromQL runs against the real Prometheus over simulator data, with the
variables substituted ("All" included), and the range panels equal direct computations."""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal

import pytest

from chargeback.api.pricing import TierPricingSpec
from chargeback.api.source import SourceSpec
from chargeback.domain.dashboards import build_dashboard, panel_queries
from chargeback.testing.simulator import HOUR_MS
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
