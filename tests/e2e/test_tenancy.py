"""Every team sees its own usage and nobody else's: scopes, with real users' tokens.

Tenants are ServiceAccounts with tokens from TokenRequest and namespaced Roles, as `edit` in their
namespace would give them. Scopes (cluster-scoped) are granted with the admin's client. The
simulated traffic's tiers stand in for cost centres: tenant A may see tier "premium", tenant B
tier "free".
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chargeback.testing.kube import ClusterAccess
from tests.e2e.conftest import (
    GROUP,
    VERSION,
    Live,
    Operator,
    condition,
    exported_document,
    get_report,
    local_zone_near_midday,
    wait_for,
    wait_ready,
)
from tests.e2e.test_http_auth import _grant, _user
from tests.e2e.test_operator import _iso, create_pricing, ms, report_body

EDIT_REPORTS = client.V1PolicyRule(api_groups=[GROUP], resources=["usagereports"],
                                   verbs=["get", "list", "create", "update", "delete"])  # fmt: skip


def _client(cluster: ClusterAccess, token: str) -> client.ApiClient:
    config = client.Configuration(host=cluster.server)
    config.ssl_ca_cert = str(cluster.ca_file)
    config.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(config)


def _scope(api: client.ApiClient, name: str, spec: dict[str, Any]) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "UsageScope", "metadata": {"name": name},
            "spec": spec}  # fmt: skip
    client.CustomObjectsApi(api).create_cluster_custom_object(GROUP, VERSION, "usagescopes", body)


@pytest.fixture
def tenants(api_client: client.ApiClient, chargeback_crds: None) -> Iterator[tuple[str, str, str]]:
    """Namespaces of tenants A and B (each with a scope) and C (none), and the scopes' names."""
    suffix = uuid.uuid4().hex[:6]
    names = [f"tenant-{t}-{suffix}" for t in "abc"]
    core = client.CoreV1Api(api_client)
    for name in names:
        core.create_namespace({"metadata": {"name": name}})
    _scope(api_client, f"a-{suffix}", {"namespaces": [names[0]], "selector": 'tier="premium"'})
    _scope(api_client, f"b-{suffix}", {"namespaces": [names[1]], "selector": 'tier="free"'})
    yield names[0], names[1], names[2]
    objects = client.CustomObjectsApi(api_client)
    for scope in (f"a-{suffix}", f"b-{suffix}"):
        objects.delete_cluster_custom_object(GROUP, VERSION, "usagescopes", scope)
    for name in names:
        core.delete_namespace(name)


def _tokens_by_tier(live: Live, document: dict[str, Any]) -> dict[str, int]:
    through = -(-ms(document["dataThrough"]) // 3_600_000) * 3_600_000
    by_tier: dict[str, int] = {}
    for (_, tier, _, _), count in live.sim.truth(ms(document["period"]["start"]), through).items():
        by_tier[tier] = by_tier.get(tier, 0) + count
    return by_tier


def test_a_tenant_sees_its_own_usage_and_nobody_elses(
    operator: Operator, live: Live, cluster: ClusterAccess, api_client: client.ApiClient,
    tenants: tuple[str, str, str],
) -> None:  # fmt: skip
    a, b, _ = tenants
    pricing = create_pricing(api_client, live, "tenancy")
    alice = _user(api_client, a, "alice")
    _grant(api_client, a, "alice", EDIT_REPORTS)
    as_alice = client.CustomObjectsApi(_client(cluster, alice))
    start, end = live.start_ms + 2 * 3_600_000, live.start_ms + 8 * 3_600_000
    period = {"start": _iso(start), "end": _iso(end)}
    everything = {"selector": ""}  # a match-everything selector, written by the tenant
    as_alice.create_namespaced_custom_object(GROUP, VERSION, a, "usagereports", report_body(
        "mine", pricing, period=period, source=everything))  # fmt: skip
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, b, "usagereports", report_body("theirs", pricing, period=period)
    )

    # Alice's report holds exactly tier premium's usage, in status, exports and over HTTP.
    mine = wait_ready(api_client, a, "mine")
    document = exported_document(api_client, a, mine)
    assert {line["tier"] for line in document["lines"]} == {"premium"}
    truth = _tokens_by_tier(live, document)
    assert mine["status"]["totals"]["tokens"] == truth["premium"] > 0
    assert document["scope"]["selector"] == 'tier="premium"'
    assert condition(mine, "Authorized")["status"] == "True"
    code, served = operator.get(f"/reports/{a}/mine/current.json", token=alice)
    assert code == 200
    assert {line["tier"] for line in json.loads(served)["lines"]} == {"premium"}

    # Tenant B's report is B's alone: alice gets 403 from the API server and from the operator.
    theirs = wait_ready(api_client, b, "theirs")
    assert theirs["status"]["totals"]["tokens"] == truth["free"]
    with pytest.raises(ApiException) as denied:
        as_alice.get_namespaced_custom_object(GROUP, VERSION, b, "usagereports", "theirs")
    assert denied.value.status == 403
    assert operator.get(f"/reports/{b}/theirs/current.json", token=alice)[0] == 403
    export = theirs["status"]["exports"][0]
    with pytest.raises(ApiException) as hidden:
        client.CoreV1Api(_client(cluster, alice)).read_namespaced_config_map(export, b)
    assert hidden.value.status == 403


def test_without_a_scope_or_with_a_metric_of_its_own_a_report_sees_nothing(
    operator: Operator, live: Live, api_client: client.ApiClient, tenants: tuple[str, str, str],
) -> None:  # fmt: skip
    a, _, c = tenants
    pricing = create_pricing(api_client, live, "noscope")
    objects = client.CustomObjectsApi(api_client)
    objects.create_namespaced_custom_object(GROUP, VERSION, c, "usagereports", report_body(
        "lonely", pricing, schedule={"interval": "daily"}))  # fmt: skip
    attack = {"metric": "container_network_transmit_bytes_total", "selector": "",
              "labels": {"user": "pod", "tier": "namespace"}}  # fmt: skip
    objects.create_namespaced_custom_object(GROUP, VERSION, a, "usagereports", report_body(
        "sneaky", pricing, schedule={"interval": "daily"}, source=attack))  # fmt: skip

    for namespace, name, reason, words in (
        (c, "lonely", "NoScope", f"no UsageScope grants namespace {c} any usage"),
        (a, "sneaky", "SourceNotAllowed", "source.metric and source.labels are set by UsageScope"),
    ):
        report = wait_for(lambda ns=namespace, n=name: (r := get_report(api_client, ns, n))
                          and condition(r, "Authorized") and r,
                          what=f"{name} authorised or not")  # fmt: skip
        authorized = condition(report, "Authorized")
        assert (authorized["status"], authorized["reason"]) == ("False", reason)
        assert words in authorized["message"]
        assert condition(report, "Ready")["status"] == "False"
        status = report["status"]
        assert status.get("totals", {}).get("tokens", 0) == 0
        assert not status.get("byTier")
        assert not status.get("topUsers")
        assert not status.get("exports")


def test_a_changed_scope_re_renders_the_open_period_and_keeps_finalised_ones(
    operator: Operator, live: Live, api_client: client.ApiClient, tenants: tuple[str, str, str],
) -> None:  # fmt: skip
    a, _, _ = tenants
    pricing = create_pricing(api_client, live, "rescope")
    schedule = {"interval": "daily", "timeZone": local_zone_near_midday()}
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, a, "usagereports", report_body("daily", pricing, schedule=schedule)
    )
    report = wait_for(lambda: (r := wait_ready(api_client, a, "daily"))
                      and r["status"].get("finalized") and r, what="a finalised day")  # fmt: skip
    scope_name = next(
        item["metadata"]["name"]
        for item in client.CustomObjectsApi(api_client).list_cluster_custom_object(
            GROUP, VERSION, "usagescopes")["items"]
        if a in item["spec"].get("namespaces", [])
    )  # fmt: skip
    client.CustomObjectsApi(api_client).patch_cluster_custom_object(
        GROUP, VERSION, "usagescopes", scope_name, {"spec": {"selector": 'tier="free"'}}
    )

    def rescoped() -> Any:
        current = get_report(api_client, a, "daily")
        document = exported_document(api_client, a, current)
        tiers = {line["tier"] for line in document["lines"]}
        return tiers == {"free"} and document

    document = wait_for(rescoped, timeout=60, what="the open period re-rendered in the new scope")
    assert document["scope"]["selector"] == 'tier="free"'
    final = report["status"]["finalized"][0]
    code, stored = operator.get(f"/reports/{a}/daily/{final['start'].replace('+00:00', 'Z')}.json")
    assert code == 200
    kept = json.loads(stored)
    assert kept["scope"]["selector"] == 'tier="premium"'
    assert {line["tier"] for line in kept["lines"]} == {"premium"}


def test_a_scope_says_whether_it_can_grant_what_it_says(
    operator: Operator, api_client: client.ApiClient, chargeback_crds: None
) -> None:
    suffix = uuid.uuid4().hex[:6]
    _scope(api_client, f"good-{suffix}", {"namespaces": [f"x-{suffix}"], "selector": 'tier="free"'})
    _scope(api_client, f"bad-{suffix}", {"namespaces": [f"y-{suffix}"], "selector": "tier=free"})
    objects = client.CustomObjectsApi(api_client)
    try:
        for name, expected in ((f"good-{suffix}", ("True", "Valid")),
                               (f"bad-{suffix}", ("False", "InvalidSelector"))):  # fmt: skip
            scope = wait_for(lambda n=name: (s := objects.get_cluster_custom_object(
                GROUP, VERSION, "usagescopes", n)) and condition(s, "Ready") and s,
                what=f"{name} Ready or not")  # fmt: skip
            ready = condition(scope, "Ready")
            assert (ready["status"], ready["reason"]) == expected
        bad = condition(objects.get_cluster_custom_object(GROUP, VERSION, "usagescopes",
                                                          f"bad-{suffix}"), "Ready")  # fmt: skip
        assert "tier=free" in bad["message"]
        good = condition(objects.get_cluster_custom_object(GROUP, VERSION, "usagescopes",
                                                           f"good-{suffix}"), "Ready")  # fmt: skip
        assert good["message"] == 'grants usage where tier="free" to 1 namespace(s) by name'
    finally:
        for name in (f"good-{suffix}", f"bad-{suffix}"):
            objects.delete_cluster_custom_object(GROUP, VERSION, "usagescopes", name)
