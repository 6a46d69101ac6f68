"""Dashboards provisioned by the operator: ConfigMaps for the sidecar, GrafanaDashboards only
when grafana-operator's CRD exists, updated on a pricing edit, removed with their owner."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chargeback.api.pricing import TierPricingSpec
from chargeback.api.source import SourceSpec
from chargeback.domain.dashboards import build_dashboard, panel_queries, usage_board
from chargeback.domain.perses import dashboard_spec
from chargeback.testing.prometheus import PrometheusServer
from tests.e2e.conftest import (
    GROUP,
    VERSION,
    Live,
    Operator,
    condition,
    foreign_crd,
    get_report,
    local_zone_near_midday,
    wait_for,
)
from tests.e2e.test_operator import PRICES, _iso, create_pricing, pricing_body, report_body

GRAFANA_CRD = foreign_crd(
    "grafana.integreatly.org", "v1beta1", "GrafanaDashboard", "grafanadashboards"
)


def dashboard_maps(core: client.CoreV1Api, pricing: str) -> list[Any]:
    return list(core.list_namespaced_config_map(
        "default", label_selector=f"chargeback.dev/pricing={pricing}").items)  # fmt: skip


def grafana_dashboards(api: client.ApiClient) -> list[dict[str, Any]]:
    try:
        listing = client.CustomObjectsApi(api).list_namespaced_custom_object(
            "grafana.integreatly.org", "v1beta1", "default", "grafanadashboards"
        )
    except ApiException:
        return []
    return list(listing["items"])  # fmt: skip


def test_dashboards_follow_pricing(operator: Operator, live: Live, api_client: client.ApiClient,
                                   namespace: str) -> None:  # fmt: skip
    core = client.CoreV1Api(api_client)
    objects = client.CustomObjectsApi(api_client)
    ext = client.ApiextensionsV1Api(api_client)
    pricing = create_pricing(api_client, live, "dash")
    period = {"start": _iso(live.start_ms + 3_600_000), "end": _iso(live.start_ms + 5 * 3_600_000)}
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "usagereports",
                                            report_body("r", pricing, period=period))  # fmt: skip

    (config_map,) = wait_for(lambda: dashboard_maps(core, pricing), what="dashboard ConfigMap")
    assert config_map.metadata.labels["grafana_dashboard"] == "1"
    assert config_map.metadata.annotations == {"k8s-sidecar-target-directory": "Chargeback",
                                               "grafana_folder": "Chargeback"}  # fmt: skip
    assert config_map.metadata.owner_references[0].kind == "TierPricing"
    board = json.loads(config_map.data["dashboard.json"])
    assert "* 0.000005" in json.dumps(board)  # free tier, 0.005 per 1K tokens
    assert grafana_dashboards(api_client) == []  # no grafana-operator CRD: no GrafanaDashboard

    body = objects.get_cluster_custom_object(GROUP, VERSION, "tierpricings", pricing)
    body["spec"]["tiers"][0]["price"] = "0.007"
    objects.replace_cluster_custom_object(GROUP, VERSION, "tierpricings", pricing, body)
    wait_for(lambda: "* 0.000007" in dashboard_maps(core, pricing)[0].data["dashboard.json"],
             what="regenerated dashboard")  # fmt: skip

    ext.create_custom_resource_definition(GRAFANA_CRD)
    try:
        (made,) = wait_for(lambda: grafana_dashboards(api_client), what="GrafanaDashboard")
        assert made["spec"]["configMapRef"] == {"name": config_map.metadata.name,
                                                "key": "dashboard.json"}  # fmt: skip
        assert made["spec"]["instanceSelector"] == {"matchLabels": {"dashboards": "grafana"}}
        objects.delete_cluster_custom_object(GROUP, VERSION, "tierpricings", pricing)
        wait_for(lambda: not dashboard_maps(core, pricing) and not grafana_dashboards(api_client),
                 what="dashboards garbage-collected with their pricing")  # fmt: skip
    finally:
        ext.delete_custom_resource_definition(GRAFANA_CRD["metadata"]["name"])
        time.sleep(1)


def test_billing_panels_equal_the_report(
    operator: Operator, live: Live, api_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    objects = client.CustomObjectsApi(api_client)
    pricing = f"bill-{uuid.uuid4().hex[:6]}"
    report = f"billing-{uuid.uuid4().hex[:6]}"
    objects.create_cluster_custom_object(
        GROUP, VERSION, "tierpricings", pricing_body(pricing, PRICES, _iso(live.start_ms))
    )
    schedule = {"interval": "daily", "timeZone": local_zone_near_midday()}
    objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "usagereports", report_body(report, pricing, schedule=schedule)
    )
    status = wait_for(lambda: (r := get_report(api_client, namespace, report))
                      and condition(r, "Ready").get("status") == "True" and r["status"],
                      what="Ready")  # fmt: skip
    board = build_dashboard(pricing, TierPricingSpec.model_validate(
        pricing_body(pricing, PRICES)["spec"]), SourceSpec(), "authorized_hits")  # fmt: skip
    queries = {title: expr.replace("$report", report) for title, expr in panel_queries(board)}
    target = operator.metrics_url.removeprefix("http://")
    with PrometheusServer(
        tmp_path / "scraper", scrape_targets=[target], scrape_token=operator.token
    ) as scraper:

        def shown(title: str) -> float | None:
            result = scraper.query(queries[title])
            return float(result[0]["value"][1]) if result else None  # type: ignore[index]

        wait_for(lambda: shown("Cost of the open period") is not None, what="operator scraped")
        status = get_report(api_client, namespace, report)["status"]
        assert shown("Tokens of the open period") == status["totals"]["tokens"]
        assert round(shown("Cost of the open period") or 0, 2) == float(status["totals"]["cost"])
        assert shown("Unpriced tokens") == 0


PERSES_CRD = foreign_crd("perses.dev", "v1alpha1", "PersesDashboard", "persesdashboards")


def perses_dashboards(api: client.ApiClient, pricing: str) -> list[dict[str, Any]]:
    try:
        listing = client.CustomObjectsApi(api).list_namespaced_custom_object(
            "perses.dev", "v1alpha1", "default", "persesdashboards",
            label_selector=f"chargeback.dev/pricing={pricing}",
        )  # fmt: skip
    except ApiException:
        return []
    return list(listing["items"])


def test_perses_dashboards_follow_pricing(
    operator: Operator, live: Live, api_client: client.ApiClient, namespace: str
) -> None:
    """Where the Cluster Observability Operator's CRD exists, each dashboard is also a
    PersesDashboard: made from the same panels, updated on a pricing edit, removed with it."""
    ext = client.ApiextensionsV1Api(api_client)
    objects = client.CustomObjectsApi(api_client)
    ext.create_custom_resource_definition(PERSES_CRD)
    try:
        pricing = create_pricing(api_client, live, "perses")
        period = {"start": _iso(live.start_ms + 3_600_000),
                  "end": _iso(live.start_ms + 5 * 3_600_000)}  # fmt: skip
        body = report_body("r", pricing, period=period)
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "usagereports", body)
        (made,) = wait_for(lambda: perses_dashboards(api_client, pricing), what="PersesDashboard")
        spec = TierPricingSpec.model_validate(pricing_body(pricing, PRICES)["spec"])
        board = usage_board(pricing, spec, SourceSpec(), "authorized_hits")
        assert made["spec"] == dashboard_spec(board)
        assert made["metadata"]["ownerReferences"][0]["kind"] == "TierPricing"
        (config_map,) = dashboard_maps(client.CoreV1Api(api_client), pricing)  # and Grafana's
        assert made["metadata"]["name"] == config_map.metadata.name

        stored = objects.get_cluster_custom_object(GROUP, VERSION, "tierpricings", pricing)
        stored["spec"]["tiers"][0]["price"] = "0.007"
        objects.replace_cluster_custom_object(GROUP, VERSION, "tierpricings", pricing, stored)
        wait_for(lambda: "* 0.000007" in json.dumps(perses_dashboards(api_client, pricing)),
                 what="regenerated PersesDashboard")  # fmt: skip
        objects.delete_cluster_custom_object(GROUP, VERSION, "tierpricings", pricing)
        wait_for(lambda: not perses_dashboards(api_client, pricing),
                 what="PersesDashboard garbage-collected with its pricing")  # fmt: skip
    finally:
        ext.delete_custom_resource_definition(PERSES_CRD["metadata"]["name"])
        time.sleep(1)
