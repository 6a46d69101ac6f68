"""Gateway presets on real Prometheus: Envoy AI Gateway, Kong and vLLM counters, read with only
`source.preset`, priced per token type, exact against the simulator's truth and to the cent
against prices applied by hand; a total or reasoning count beside its parts is never billed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from chargeback.api.pricing import TierPricingSpec
from chargeback.api.source import SourceSpec
from chargeback.domain.dashboards import build_dashboard, panel_queries
from chargeback.testing import gateways
from chargeback.testing.gateways import ENVOY, KONG, PLAN, VLLM, Gateway
from chargeback.testing.prometheus import PrometheusServer
from chargeback.testing.simulator import HOUR_MS
from tests.integration.conftest import T0, Traffic, day_two_report
from tests.integration.test_dashboards import substitute

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


OVERRIDE = {"name": OUTPUT_OVERRIDE[0], "outputPrice": OUTPUT_OVERRIDE[1]}
PRICING = {
    "currency": "USD", "tokensPerUnit": UNIT,
    "tiers": [{"name": PLAN, "inputPrice": PLAN_PRICES["input"],
               "outputPrice": PLAN_PRICES["output"],
               "cachedInputPrice": PLAN_PRICES["cached_input"], "models": [OVERRIDE]}],
}  # fmt: skip


def report(prometheus: PrometheusServer, tmp_path: Path, preset: str) -> dict[str, Any]:
    """The day's report whose source is only a preset."""
    return day_two_report(prometheus, tmp_path, PRICING, {"preset": preset})


def shown(document: dict[str, Any]) -> dict[tuple[str, str, str, str], int]:
    totals: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for line in document["lines"]:
        totals[(line["user"], line["tier"], line["model"], line["tokenType"])] += line["tokens"]
    return dict(totals)


KIND: dict[str, Callable[[dict[str, str], str], str]] = {
    "envoy-ai-gateway": lambda labels, _: labels["gen_ai_token_type"],
    "kong": lambda labels, _: labels["token_type"],
}
"""The exported token type of a series (vLLM: from `vllm:<type>_tokens_total`)."""

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
    # The report is day two's: the third day's samples (a third of the backfill) are not needed,
    # beyond two hours that close the day's last bucket.
    until = END + 2 * HOUR_MS
    with path.open("w") as out:
        out.writelines(f"{line}\n" for line in gateways.openmetrics(traffic.sim, gateway, until))
    server = prometheus_factory(path, program=program)
    path.unlink()  # in the TSDB now; Envoy's counters are 0.9 GB of text
    document = report(server, tmp_path, gateway.name)

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
    dashboard_matches_the_counters(server, gateway)


def dashboard_matches_the_counters(server: PrometheusServer, gateway: Gateway) -> None:
    """Every panel query runs; the live tokens and list-price cost of the last day equal each
    series' increase, summed and priced by hand (cached input netted out of input)."""
    source = SourceSpec.model_validate({"preset": gateway.name})
    metric = source.parts()[0].metric or ""
    board = build_dashboard(gateway.name, TierPricingSpec.model_validate(PRICING), source, metric)
    at = END / 1000
    panels = dict(panel_queries(board))
    for title, expr in panels.items():
        assert isinstance(server.query(substitute(expr), at=at), list), title
    tokens: dict[tuple[str, str, str], float] = defaultdict(float)
    for name in sorted({gateway.metric(kind) for kind in (*gateway.types, *gateway.ignored)}):
        for item in server.query(f'increase({{__name__="{name}"}}[24h])', at=at):
            labels = item["metric"]
            kind = KIND.get(gateway.name, lambda _, metric: metric[5:-13])(labels, name)
            shown_as = gateway.types.get(kind)
            if shown_as is not None:
                user = labels.get(source.labels.user, "")
                model = labels[source.labels.model]
                tokens[(user, model, shown_as)] += float(item["value"][1])
    for (user, model, kind), count in list(tokens.items()):
        if kind == "cached_input":
            tokens[(user, model, "input")] -= count
    total = sum(tokens.values())
    cost = sum(
        count * float(price(model, kind)) / UNIT for (_, model, kind), count in tokens.items()
    )
    assert float(server.query(substitute(panels["Tokens in range"]), at=at)[0]["value"][1]) == (
        pytest.approx(total))  # fmt: skip
    shown_cost = server.query(substitute(panels["Cost in range (list prices)"]), at=at)
    assert float(shown_cost[0]["value"][1]) == pytest.approx(cost)
