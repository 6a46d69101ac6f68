"""Prices from MaaSSubscriptions, on the real API server with the MaaSSubscription CRD installed:
imported per (subscription, model), the TierPricing's own entries winning, malformed rates named
in a condition without stopping the others, a rate change versioned from when it is seen and
pricing the rest of the period, finalised periods unchanged by later rates."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from chargeback.adapters.kube import list_custom_objects
from chargeback.adapters.ledger import Ledger
from chargeback.adapters.pricing_ledger import PricingLedger
from chargeback.adapters.prometheus import PrometheusClient, PrometheusSettings
from chargeback.api.report import UsageReportSpec
from chargeback.app.root import report_service
from chargeback.domain.periods import Period
from chargeback.domain.reports import iso
from chargeback.domain.subscriptions import GROUP, PLURAL, VERSION, plan_teams
from chargeback.services.pricing import PricingReconciler
from chargeback.testing.kube import apply_crds
from chargeback.testing.maas import COST_CENTER, maas_v02, subscription, subscription_crd
from chargeback.testing.prometheus import PrometheusServer
from chargeback.testing.simulator import HOUR_MS
from tests.integration.conftest import T0, Traffic

START, END = T0 + 24 * HOUR_MS, T0 + 48 * HOUR_MS
CHANGE = START + 13 * HOUR_MS
UNIT = 1000


@pytest.fixture(scope="module")
def maas_crd(api_client: client.ApiClient) -> None:
    """The MaaSSubscription CRD, installed in the session's API server."""
    apply_crds(api_client, [subscription_crd()])


@pytest.fixture
def maas_namespace(api_client: client.ApiClient, maas_crd: None) -> Iterator[str]:
    """A namespace of its own for the test's subscriptions."""
    name = f"maas-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def reconciler(api: client.ApiClient, tmp_path: Path, clock: Clock) -> PricingReconciler:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()

    def subscriptions(namespaces: tuple[str, ...]) -> list[dict[str, Any]] | None:
        return list_custom_objects(api, GROUP, VERSION, PLURAL, namespaces)

    return PricingReconciler(PricingLedger(ledger), clock, subscriptions=subscriptions)


def create(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )


def set_rate(api: client.ApiClient, namespace: str, name: str, model: str, rate: str) -> None:
    objects = client.CustomObjectsApi(api)
    found = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    for ref in found["spec"]["modelRefs"]:
        if ref["name"] == model:
            ref["billingRate"]["perToken"] = rate
    objects.replace_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, found)


def pricing_spec(namespace: str, tiers: list[dict[str, Any]]) -> dict[str, Any]:
    return {"currency": "USD", "tokensPerUnit": UNIT, "effectiveFrom": iso(T0),
            "tiers": tiers, "maasSubscriptions": {"namespaces": [namespace]}}  # fmt: skip


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_rates_are_imported_beside_the_pricings_own_and_bad_ones_named(
    api_client: client.ApiClient, maas_namespace: str, tmp_path: Path
) -> None:
    ns = maas_namespace
    create(api_client, ns, subscription("gold", {
        "granite-3-8b": "0.000002", "llama-3-70b": "0.00001", "mistral-7b": "abc"}))  # fmt: skip
    create(api_client, ns, subscription("silver", {
        "granite-3-8b": "-1", "phi-3-mini": "1e-3", "qwen-2-72b": "0.0000005"}))  # fmt: skip
    clock = Clock(T0)
    pricing = reconciler(api_client, tmp_path, clock)
    spec = pricing_spec(ns, [{"name": "gold", "price": "0.001",
                              "models": [{"name": "llama-3-70b", "price": "0.05"}]}])  # fmt: skip
    first = pricing.reconcile("maas", spec, 1, {})
    status = first.status
    assert (status["currentVersion"], status["importedPrices"]) == (1, 3)
    assert condition(status, "Ready")["status"] == "True"
    imported = condition(status, "PricesImported")
    assert (imported["status"], imported["reason"]) == ("False", "SomeRatesInvalid")
    assert imported["message"].startswith("3 prices from 2 MaaSSubscriptions; left out: ")
    for bad in ("gold model mistral-7b: billingRate.perToken 'abc'",
                "silver model granite-3-8b: billingRate.perToken '-1'",
                "silver model phi-3-mini: billingRate.perToken '1e-3'"):  # fmt: skip
        assert bad in imported["message"]
    book = pricing.price_book("maas")
    assert book is not None
    version = book.versions[-1]
    assert version.price("gold", "granite-3-8b") == Decimal("0.002")  # 0.000002 x 1000
    assert version.price("gold", "llama-3-70b") == Decimal("0.05")  # its own entry wins
    assert version.price("gold", "mistral-7b") == Decimal("0.001")  # bad rate: the tier's price
    assert version.price("silver", "qwen-2-72b") == Decimal("0.0005")
    assert version.price("silver", "granite-3-8b") is None  # unpriced, never free
    # Nothing changed: the next refresh records nothing.
    clock.now_ms += HOUR_MS
    pricing.reconcile("maas", spec, 1, status)
    book = pricing.price_book("maas")
    assert book is not None
    assert len(book.versions) == 1


def test_a_rate_change_prices_the_rest_of_the_period_and_spares_finalised_ones(
    api_client: client.ApiClient, maas_namespace: str, traffic: Traffic,
    prometheus_factory: Callable[..., PrometheusServer], tmp_path: Path,
) -> None:  # fmt: skip
    ns = maas_namespace
    rates = {"free": "0.000001", "premium": "0.000004", "enterprise": "0.000003"}
    for tier, rate in rates.items():
        body = subscription(tier, dict.fromkeys(
            ("granite-3-8b", "llama-3-70b", "mistral-7b", "qwen-2-72b", "phi-3-mini"), rate),
            COST_CENTER[tier])  # fmt: skip
        create(api_client, ns, body)
    clock = Clock(T0)
    pricing = reconciler(api_client, tmp_path, clock)
    spec = pricing_spec(ns, [])  # every price from the subscriptions
    status = pricing.reconcile("subs", spec, 1, {}).status
    assert status["importedPrices"] == 15
    clock.now_ms = CHANGE
    set_rate(api_client, ns, "premium", "llama-3-70b", "0.00002")
    status = pricing.reconcile("subs", spec, 1, status).status
    assert (status["currentVersion"], status["effectiveFrom"]) == (2, iso(CHANGE))

    path = tmp_path / "maas.om"
    path.write_text("\n".join(maas_v02(traffic.sim, with_user=False)) + "\n")
    server = prometheus_factory(path)
    prometheus = PrometheusClient(PrometheusSettings(server.url))
    ledger = Ledger(f"sqlite:///{tmp_path / 'reports.db'}")
    ledger.migrate()
    reports = report_service(prometheus, ledger, HOUR_MS, None)
    report = UsageReportSpec.model_validate({
        "pricingRef": {"name": "subs"},
        "period": {"start": iso(START), "end": iso(END)},
    })  # fmt: skip
    book = pricing.price_book("subs")
    assert book is not None
    now = END + 3 * HOUR_MS
    rendered = reports.render("ns/subs", report, book, now_ms=now, period=Period(START, END),
                              history_start_ms=T0)  # fmt: skip
    assert rendered.finalized
    document = rendered.document
    # By hand: each bucket's tokens at the rate in force at its start, per line, half up.
    exact: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for (_, tier, model, bucket), tokens in traffic.sim.truth(START, END).items():
        rate = Decimal(rates[tier])
        if (tier, model) == ("premium", "llama-3-70b") and bucket >= CHANGE:
            rate = Decimal("0.00002")
        exact[(COST_CENTER[tier], tier, model)] += tokens * rate
    expected = {k: v.quantize(Decimal("0.01"), ROUND_HALF_UP) for k, v in exact.items()}
    assert {(ln.team, ln.tier, ln.model): ln.cost for ln in document.lines} == expected
    assert document.unpriced_tokens == 0
    assert {c.version for c in document.charges or ()} == {1, 2}
    json_before = rendered.text("json")

    # A later rate change is a third version; the finalised period keeps its bytes.
    clock.now_ms = now + HOUR_MS
    set_rate(api_client, ns, "free", "granite-3-8b", "0.0009")
    status = pricing.reconcile("subs", spec, 1, status).status
    assert status["currentVersion"] == 3
    book = pricing.price_book("subs")
    assert book is not None
    again = reports.render("ns/subs", report, book, now_ms=now + 2 * HOUR_MS,
                           period=Period(START, END), history_start_ms=T0)  # fmt: skip
    assert again.text("json") == json_before
    ledger.close()


def test_counters_without_cost_centre_take_the_subscriptions_team(
    api_client: client.ApiClient, maas_namespace: str, traffic: Traffic,
    prometheus_factory: Callable[..., PrometheusServer], tmp_path: Path,
) -> None:  # fmt: skip
    ns = maas_namespace
    for tier, centre in COST_CENTER.items():
        create(api_client, ns, subscription(tier, {"granite-3-8b": "0.000001"}, centre))
    path = tmp_path / "maas.om"
    path.write_text("\n".join(maas_v02(traffic.sim, with_user=True, cost_centres=False)) + "\n")
    prometheus = PrometheusClient(PrometheusSettings(prometheus_factory(path).url))
    ledger = Ledger(f"sqlite:///{tmp_path / 'teams.db'}")
    ledger.migrate()

    def teams() -> dict[str, str]:
        return plan_teams(list_custom_objects(api_client, GROUP, VERSION, PLURAL, (ns,)) or [])

    reports = report_service(prometheus, ledger, HOUR_MS, None, plan_teams=teams)
    pricing = reconciler(api_client, tmp_path, Clock(T0))
    pricing.reconcile("teams", pricing_spec(ns, []), 1, {})
    book = pricing.price_book("teams")
    assert book is not None
    report = UsageReportSpec.model_validate({
        "pricingRef": {"name": "teams"}, "period": {"start": iso(START), "end": iso(END)},
    })  # fmt: skip
    rendered = reports.render("ns/teams", report, book, now_ms=END + 3 * HOUR_MS,
                              period=Period(START, END), history_start_ms=T0)  # fmt: skip
    by_team: dict[str, int] = defaultdict(int)
    for line in rendered.document.lines:
        by_team[line.team] += line.tokens
    expected: dict[str, int] = defaultdict(int)
    for (_, tier, _, _), tokens in traffic.sim.truth(START, END).items():
        expected[COST_CENTER[tier]] += tokens
    assert dict(by_team) == dict(expected)  # no usage left unassigned
    # Without the cluster's subscriptions (the CLI), the same usage is unassigned.
    alone = report_service(prometheus, ledger, HOUR_MS, None).render(
        "ns/teams-alone", report, book, now_ms=END + 3 * HOUR_MS, period=Period(START, END),
        history_start_ms=T0)  # fmt: skip
    assert {line.team for line in alone.document.lines} == {"unassigned"}
