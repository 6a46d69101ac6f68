"""The API server itself rejects invalid manifests with a message that names the field."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from chargeback.api.common import GROUP, VERSION
from chargeback.api.pricing import TierPricingSpec
from chargeback.api.report import UsageReportSpec
from tests.conftest import ROOT

EXAMPLES = ROOT / "docs" / "examples"


def example(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / name).read_text())


CLUSTER_KINDS = {"TierPricing": "tierpricings", "UsageScope": "usagescopes"}


def create(api: client.ApiClient, body: dict[str, Any], namespace: str) -> None:
    objects = client.CustomObjectsApi(api)
    if body["kind"] in CLUSTER_KINDS:
        objects.create_cluster_custom_object(
            GROUP, VERSION, CLUSTER_KINDS[body["kind"]], body, dry_run="All",
            field_validation="Strict",
        )  # fmt: skip
    else:
        body = {**body, "metadata": {**body["metadata"], "namespace": namespace}}
        objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "usagereports", body, dry_run="All",
            field_validation="Strict",
        )  # fmt: skip


def setting(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set (or with value DELETE, remove) spec.<path>; list indexes as numbers."""

    def apply(doc: dict[str, Any]) -> None:
        node: Any = doc["spec"]
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        last = parts[-1]
        if value is DELETE:
            del node[int(last) if last.isdigit() else last]
        elif last.isdigit() and int(last) == len(node):
            node.append(value)
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return apply


DELETE = object()
TIER = {"name": "gold", "price": "1"}

PRICING_CASES = [
    ("negative price", setting("tiers.0.price", "-0.005"), "spec.tiers[0].price"),
    ("float price", setting("tiers.0.price", 0.005), "spec.tiers[0].price"),
    ("exponent price", setting("tiers.0.price", "5e-3"), "spec.tiers[0].price"),
    ("two points", setting("tiers.0.price", "0.0.5"), "spec.tiers[0].price"),
    ("text price", setting("tiers.0.price", "cheap"), "spec.tiers[0].price"),
    ("empty price", setting("tiers.0.price", ""), "spec.tiers[0].price"),
    ("leading zeros", setting("tiers.0.price", "007"), "spec.tiers[0].price"),
    ("13 decimals", setting("tiers.0.price", "0.0000000000001"), "spec.tiers[0].price"),
    ("missing price", setting("tiers.0.price", DELETE),
     "at least one of inputPrice, outputPrice, cachedInputPrice"),
    ("bad input price", setting("tiers.0.inputPrice", "1e-3"), "spec.tiers[0].inputPrice"),
    ("bad cached price", setting("tiers.1.models.0.cachedInputPrice", "-1"),
     "spec.tiers[1].models[0].cachedInputPrice"),
    ("bad model price", setting("tiers.1.models.0.price", "-1"), "spec.tiers[1].models[0].price"),
    ("unknown currency", setting("currency", "XYZ"), "spec.currency"),
    ("lowercase currency", setting("currency", "usd"), "spec.currency"),
    ("missing currency", setting("currency", DELETE), "spec.currency"),
    ("zero unit", setting("tokensPerUnit", 0), "spec.tokensPerUnit"),
    ("negative unit", setting("tokensPerUnit", -1000), "spec.tokensPerUnit"),
    ("string unit", setting("tokensPerUnit", "1000"), "spec.tokensPerUnit"),
    ("negative allowance", setting("tiers.0.includedTokens", -1), "spec.tiers[0].includedTokens"),
    ("no tiers", setting("tiers", []), "spec.tiers"),
    ("too many tiers", setting("tiers", [{"name": f"t{i}", "price": "1"} for i in range(65)]),
     "spec.tiers"),
    ("duplicate tier", setting("tiers.2", {"name": "free", "price": "1"}), "spec.tiers[2]"),
    ("tier name with space", setting("tiers.0.name", "Free Tier"), "spec.tiers[0].name"),
    ("tier name too long", setting("tiers.0.name", "t" * 64), "spec.tiers[0].name"),
    ("duplicate model", setting("tiers.1.models.1", {"name": "llama-3-70b", "price": "1"}),
     "spec.tiers[1].models[1]"),
    ("bad model name", setting("tiers.1.models.0.name", "-llama"), "spec.tiers[1].models[0].name"),
    ("bad effectiveFrom", setting("effectiveFrom", "yesterday"), "spec.effectiveFrom"),
    ("unknown field", setting("discount", "10%"), "spec.discount"),
]  # fmt: skip

REPORT_CASES = [
    ("missing pricingRef", setting("pricingRef", DELETE), "spec.pricingRef"),
    ("bad pricingRef name", setting("pricingRef.name", "Maas_Default"), "spec.pricingRef.name"),
    ("both period and schedule",
     setting("period", {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"}),
     "exactly one of period or schedule must be set"),
    ("neither period nor schedule", setting("schedule", DELETE),
     "exactly one of period or schedule must be set"),
    ("unknown interval", setting("schedule.interval", "hourly"), "spec.schedule.interval"),
    ("bad time zone", setting("schedule.timeZone", "Mars Olympus"), "spec.schedule.timeZone"),
    ("bad grace period", setting("schedule.gracePeriod", "2 hours"), "spec.schedule.gracePeriod"),
    ("float grace period", setting("schedule.gracePeriod", 2.5), "spec.schedule.gracePeriod"),
    ("keep 0 periods", setting("schedule.keepFinalized", 0), "spec.schedule.keepFinalized"),
    ("topUsers 0", setting("topUsers", 0), "spec.topUsers"),
    ("topUsers 500", setting("topUsers", 500), "spec.topUsers"),
    ("bad metric", setting("source.metric", "hits) or vector(1"), "spec.source.metric"),
    ("oversized selector", setting("source.selector", "a" * 1025), "spec.source.selector"),
    ("bad label mapping", setting("source.labels.user", "user-name"), "spec.source.labels.user"),
    ("too many extra labels", setting("source.extraLabels", [f"l{i}" for i in range(9)]),
     "spec.source.extraLabels"),
    ("bad extra label", setting("source.extraLabels", ["cost center"]),
     "spec.source.extraLabels[0]"),
    ("unknown preset", setting("source.preset", "litellm"), "spec.source.preset"),
    ("unknown token type", setting("source.tokenTypes", {"prompt": "prompt"}),
     "spec.source.tokenTypes.prompt"),
    ("token types without label", setting("source.tokenTypes", {"prompt": "input"}),
     "tokenTypeLabel and tokenTypes go together"),
    ("token type label without types", setting("source.tokenTypeLabel", "token_type"),
     "tokenTypeLabel and tokenTypes go together"),
    ("metric and metricTokenTypes",
     setting("source", {"metric": "a_total", "metricTokenTypes": {"b_total": "input"}}),
     "metricTokenTypes replaces metric"),
    ("bad default tier", setting("source.defaultTier", "Default"), "spec.source.defaultTier"),
    ("duplicate team", setting("attribution.teams.1", {"name": "data-science", "users": ["x"]}),
     "spec.attribution.teams[1]"),
    ("bad team name", setting("attribution.teams.0.name", "Data Science"),
     "spec.attribution.teams[0].name"),
    ("team label not extra", setting("attribution.teamLabel", "cost_center"),
     "attribution.teamLabel must be listed in source.extraLabels"),
    ("duplicate member", setting("attribution.teams.0.users", ["a", "a"]),
     "spec.attribution.teams[0].users[1]"),
    ("empty member", setting("attribution.teams.0.users", [""]),
     "spec.attribution.teams[0].users[0]"),
    ("unknown field", setting("owner", "finance"), "spec.owner"),
]  # fmt: skip

BUDGET = {"name": "extra", "amount": "10", "scope": "model", "match": "granite"}
BUDGET_CASES = [
    ("zero amount", setting("budgets.0.amount", "0.00"), "spec.budgets[0].amount: Invalid value"),
    ("negative amount", setting("budgets.0.amount", "-5"), "spec.budgets[0].amount"),
    ("float amount", setting("budgets.0.amount", 500.5), "spec.budgets[0].amount"),
    ("exponent amount", setting("budgets.0.amount", "5e2"), "spec.budgets[0].amount"),
    ("missing amount", setting("budgets.0.amount", DELETE), "spec.budgets[0].amount"),
    ("unknown budget scope", setting("budgets.1.scope", "tenant"), "spec.budgets[1].scope"),
    ("team budget without match", setting("budgets.1.match", DELETE),
     "spec.budgets[1].match: Invalid value"),
    ("report budget with match", setting("budgets.0.match", "x"),
     "spec.budgets[0].match: Invalid value"),
    ("duplicate budget name", setting("budgets.2", {**BUDGET, "name": "all-usage"}),
     "spec.budgets[2]"),
    ("duplicate budget scope", setting("budgets.2", {**BUDGET, "scope": "team",
                                                     "match": "data-science"}),
     "two budgets count the same scope and match"),
    ("threshold 0", setting("budgets.1.thresholds.0", 0), "spec.budgets[1].thresholds[0]"),
    ("threshold 1001", setting("budgets.1.thresholds.0", 1001), "spec.budgets[1].thresholds[0]"),
    ("repeated threshold", setting("budgets.1.thresholds", [80, 80]),
     "spec.budgets[1].thresholds[1]"),
    ("no thresholds", setting("budgets.1.thresholds", []), "spec.budgets[1].thresholds"),
    ("bad budget name", setting("budgets.0.name", "All Usage"), "spec.budgets[0].name"),
    ("too many budgets", setting("budgets", [{**BUDGET, "name": f"b{i}", "match": f"m{i}"}
                                             for i in range(21)]), "spec.budgets"),
    ("unknown budget field", setting("budgets.0.limit", "hard"), "spec.budgets[0].limit"),
]  # fmt: skip

FIXED_CASES = [
    ("start after end", setting("period.start", "2026-02-01T00:00:00Z"),
     "period.start must be before period.end"),
    ("start equals end", setting("period.start", "2026-01-12T00:00:00Z"),
     "period.start must be before period.end"),
    ("bad start", setting("period.start", "last monday"), "spec.period.start"),
    ("missing end", setting("period.end", DELETE), "spec.period.end"),
]  # fmt: skip

CASES = (
    [("tierpricing.yaml", *c) for c in PRICING_CASES]
    + [("usagereport-monthly.yaml", *c) for c in REPORT_CASES + BUDGET_CASES]
    + [("usagereport-fixed.yaml", *c) for c in FIXED_CASES]
)


def test_there_are_at_least_forty_distinct_cases() -> None:
    assert len({(f, name) for f, name, _, _ in CASES}) >= 40


@pytest.mark.usefixtures("chargeback_crds")
@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_examples_are_accepted(api_client: client.ApiClient, namespace: str, name: str) -> None:
    for document in yaml.safe_load_all((EXAMPLES / name).read_text()):
        create(api_client, document, namespace)


@pytest.mark.usefixtures("chargeback_crds")
@pytest.mark.parametrize(("spec", "message"), [
    ({"selector": 'tier="free"'}, "a scope grants namespaces: set namespaces or namespaceSelector"),
    ({"namespaces": ["a", "a"]}, "Duplicate value"),
    ({"namespaces": ["Not_A_Namespace"]}, "spec.namespaces[0]"),
    ({"namespaceSelector": {"matchLabels": {}}}, "spec.namespaceSelector.matchLabels"),
    ({"namespaceSelector": {"matchLabels": {"k": "not a value"}}}, "spec.namespaceSelector"),
    ({"namespaces": ["a"], "source": {"metric": "1bad"}}, "spec.source.metric"),
])  # fmt: skip
def test_invalid_scopes_are_rejected_with_the_field_named(
    api_client: client.ApiClient, namespace: str, spec: dict[str, Any], message: str
) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "UsageScope",
            "metadata": {"name": "bad"}, "spec": spec}  # fmt: skip
    with pytest.raises(ApiException) as err:
        create(api_client, body, namespace)
    assert err.value.status in (400, 422)
    assert message in json.loads(err.value.body)["message"]


@pytest.mark.usefixtures("chargeback_crds")
@pytest.mark.parametrize(("file", "case", "mutate", "message"), CASES, ids=[c[1] for c in CASES])
def test_invalid_manifests_are_rejected_by_the_api_server(
    api_client: client.ApiClient,
    namespace: str,
    file: str,
    case: str,
    mutate: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    doc = copy.deepcopy(example(file))
    mutate(doc)
    with pytest.raises(ApiException) as err:
        create(api_client, doc, namespace)
    assert err.value.status in (400, 422), case
    body = json.loads(err.value.body)
    assert message in body["message"], f"{case}: {body['message']}"


@pytest.mark.parametrize(("file", "case", "mutate", "message"), CASES, ids=[c[1] for c in CASES])
def test_invalid_manifests_are_rejected_without_a_cluster_too(
    file: str, case: str, mutate: Callable[[dict[str, Any]], None], message: str
) -> None:
    doc = copy.deepcopy(example(file))
    mutate(doc)
    model = TierPricingSpec if doc["kind"] == "TierPricing" else UsageReportSpec
    with pytest.raises(ValidationError):
        model.model_validate(doc["spec"])
