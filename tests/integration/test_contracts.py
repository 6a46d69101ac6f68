"""Zero configuration on both MaaS eras: a report with only pricingRef and period reads the
workshop contract (user, tier, model) and MaaS v0.2 subscriptions (with and without `user`)
exactly, against the simulator's truth, on real Prometheus."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chargeback.testing.maas import COST_CENTER, maas_v02
from chargeback.testing.prometheus import PrometheusServer
from chargeback.testing.simulator import HOUR_MS
from tests.integration.conftest import T0, Traffic, day_two_report

START, END = T0 + 24 * HOUR_MS, T0 + 48 * HOUR_MS
PRICES = {"free": "0.005", "premium": "0.008", "enterprise": "0.006"}


def report(prometheus: PrometheusServer, tmp_path: Path) -> dict[str, Any]:
    """The day's report with only pricingRef and period."""
    tiers = [{"name": t, "price": p} for t, p in PRICES.items()]
    return day_two_report(prometheus, tmp_path, {"currency": "USD", "tiers": tiers})


def truth(traffic: Traffic, key: Callable[[str, str, str], tuple[str, ...]]) -> dict[Any, int]:
    totals: dict[Any, int] = defaultdict(int)
    for (user, tier, model, _), count in traffic.sim.truth(START, END).items():
        totals[key(user, tier, model)] += count
    return {k: v for k, v in totals.items() if v}


def lines(document: dict[str, Any], *fields: str) -> dict[Any, int]:
    totals: dict[Any, int] = defaultdict(int)
    for line in document["lines"]:
        totals[tuple(line[f] for f in fields)] += line["tokens"]
    return {k: v for k, v in totals.items() if v}


@pytest.mark.parametrize("with_user", [False, True], ids=["no-user", "user-captured"])
def test_maas_subscriptions_need_no_configuration(
    traffic: Traffic, prometheus_factory: Callable[..., PrometheusServer], tmp_path: Path,
    with_user: bool,
) -> None:  # fmt: skip
    path = tmp_path / "maas.om"
    path.write_text("\n".join(maas_v02(traffic.sim, with_user=with_user)) + "\n")
    document = report(prometheus_factory(path), tmp_path)
    # Per (cost centre, subscription, model), exact; the plan is the subscription.
    expected = truth(traffic, lambda user, tier, model: (COST_CENTER[tier], tier, model))
    assert lines(document, "team", "tier", "model") == expected
    assert document["totals"]["unpricedTokens"] == 0  # subscriptions matched the pricing's tiers
    if with_user:
        assert lines(document, "user", "tier") == truth(traffic, lambda u, t, _: (u, t))
    else:
        assert {line["user"] for line in document["lines"]} == {""}


def test_the_workshop_contract_needs_no_configuration(traffic: Traffic, tmp_path: Path) -> None:
    document = report(traffic.prometheus, tmp_path)
    assert lines(document, "user", "tier", "model") == truth(traffic, lambda u, t, m: (u, t, m))
    assert {line["team"] for line in document["lines"]} == {"unassigned"}
