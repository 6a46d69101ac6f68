"""The operator reconciles real objects: status equals priced ground truth, through edits,
outages and deletion."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import subprocess
import time
import uuid
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chargeback.adapters.ledger import Ledger
from chargeback.adapters.pricing_ledger import PricingLedger
from chargeback.domain.periods import scheduled_period
from chargeback.testing.kube import ClusterAccess, ControlPlane
from chargeback.testing.tools import binary
from tests.e2e.conftest import (
    GROUP,
    VERSION,
    Live,
    Operator,
    condition,
    get_report,
    local_zone_near_midday,
    wait_for,
    wait_ready,
)

PRICES = {"free": "0.005", "premium": "0.008", "enterprise": "0.006"}


def pricing_body(name: str, prices: dict[str, str], effective: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "currency": "USD",
        "tokensPerUnit": 1000,
        "tiers": [{"name": t, "price": p} for t, p in prices.items()],
    }
    if effective:
        spec["effectiveFrom"] = effective
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TierPricing",
        "metadata": {"name": name},
        "spec": spec,
    }


def create_pricing(api: client.ApiClient, live: Live, prefix: str) -> str:
    """A TierPricing with PRICES effective from the start of the simulated history."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    client.CustomObjectsApi(api).create_cluster_custom_object(
        GROUP, VERSION, "tierpricings", pricing_body(name, PRICES, _iso(live.start_ms))
    )
    return name


def report_body(name: str, pricing: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "UsageReport",
        "metadata": {"name": name},
        "spec": {"pricingRef": {"name": pricing}, **spec},
    }


def hand_cost(
    live: Live, start: int, end: int, versions: list[tuple[int, dict[str, str]]]
) -> tuple[int, str]:
    """Tokens and cost of [start, end) from the simulator's truth, priced by hand per line."""
    exact: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    tokens = 0
    for (user, tier, model, bucket), count in live.sim.truth(start, end).items():
        prices = [p for since, p in versions if since <= bucket][-1]
        exact[(user, tier, model)] += Decimal(count) * Decimal(prices[tier]) / 1000
        tokens += count
    cost = sum(
        (v.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) for v in exact.values()), Decimal(0)
    )
    return tokens, str(cost)


def live_totals(live: Live, document: dict[str, Any]) -> dict[str, Any]:
    """Status totals the truth gives for a report document priced at PRICES throughout."""
    through = -(-ms(document["dataThrough"]) // 3_600_000) * 3_600_000
    tokens, cost = hand_cost(live, ms(document["period"]["start"]), through, [(0, PRICES)])
    assert tokens > 0
    return {"tokens": tokens, "cost": cost, "unpricedTokens": 0}


def ms(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso).timestamp() * 1000)


def test_operator_end_to_end(
    operator: Operator,
    live: Live,
    api_client: client.ApiClient,
    cluster: ClusterAccess,
    namespace: str,
) -> None:
    objects = client.CustomObjectsApi(api_client)
    core = client.CoreV1Api(api_client)
    pricing = create_pricing(api_client, live, "maas")
    zone = local_zone_near_midday()
    daily = report_body(
        "daily", pricing, schedule={"interval": "daily", "timeZone": zone, "gracePeriod": "2h"}
    )
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "usagereports", daily)

    # Within seconds: Ready, and totals equal the priced ground truth up to the collected hour.
    report = wait_for(
        lambda: (
            (r := get_report(api_client, namespace, "daily"))
            and condition(r, "Ready").get("status") == "True"
            and r
        ),
        what="Ready",
    )
    status = report["status"]
    period = scheduled_period(live.start_ms + 49 * 3_600_000, "daily", zone)
    assert status["period"]["start"] == _iso(period.start_ms)
    export = core.read_namespaced_config_map(status["exports"][0], namespace)
    document = json.loads(export.data["report.json"])
    # The open hour is included live: everything the simulator scraped up to now.
    through = -(-ms(document["dataThrough"]) // 3_600_000) * 3_600_000
    tokens, cost = hand_cost(live, period.start_ms, through, [(0, PRICES)])
    assert status["totals"] == {"tokens": tokens, "cost": cost, "unpricedTokens": 0}
    assert tokens > 0
    assert condition(report, "Priced")["status"] == "True"
    assert condition(report, "DataComplete")["status"] == "True"
    assert export.metadata.owner_references[0].name == "daily"

    # The previous day is finalised, with its own export and summary.
    previous = scheduled_period(period.start_ms - 1, "daily", zone)
    final = wait_for(
        lambda: get_report(api_client, namespace, "daily")["status"].get("finalized"),
        what="finalised period",
    )
    assert final[0]["start"] == _iso(previous.start_ms)
    final_tokens, final_cost = hand_cost(live, previous.start_ms, previous.end_ms, [(0, PRICES)])
    assert (final[0]["tokens"], final[0]["cost"]) == (final_tokens, final_cost)

    # kubectl shows useful columns.
    table = subprocess.run(
        [
            str(binary("kubectl")),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "get",
            "usagereports",
            "-n",
            namespace,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert table.split()[:7] == ["NAME", "READY", "PERIOD", "TOKENS", "COST", "CURRENCY", "AGE"]
    assert f"{tokens}" in table
    assert cost in table

    # Metrics carry the same numbers.
    code, exposition = operator.get("/metrics")
    assert code == 200
    assert (
        f'chargeback_report_unpriced_tokens{{namespace="{namespace}",report="daily"}} 0.0'
        in exposition
    )

    # A price change mid-period: the open period is re-priced from the effective time; the
    # finalised day is not.
    change = period.start_ms + 3 * 3_600_000
    new_prices = {**PRICES, "free": "0.050"}
    body = objects.get_cluster_custom_object(GROUP, VERSION, "tierpricings", pricing)
    body["spec"] = pricing_body(pricing, new_prices, _iso(change))["spec"]
    objects.replace_cluster_custom_object(GROUP, VERSION, "tierpricings", pricing, body)
    want = hand_cost(live, period.start_ms, through, [(0, PRICES), (change, new_prices)])
    wait_for(
        lambda: get_report(api_client, namespace, "daily")["status"]["totals"]["cost"] == want[1],
        what=f"re-priced cost {want[1]}",
    )
    after = get_report(api_client, namespace, "daily")["status"]["finalized"][0]
    assert (after["tokens"], after["cost"]) == (final_tokens, final_cost)
    pricing_status = objects.get_cluster_custom_object(GROUP, VERSION, "tierpricings", pricing)[
        "status"
    ]
    assert pricing_status["currentVersion"] == 2
    assert condition({"status": pricing_status}, "Ready")["status"] == "True"

    # Deleting the report removes its exports (garbage collection) but not its billing history.
    objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, "usagereports", "daily")
    wait_for(
        lambda: (
            not core.list_namespaced_config_map(
                namespace, label_selector="chargeback.dev/report=daily"
            ).items
        ),
        what="exports GC",
    )
    ledger = Ledger(operator.ledger_dsn)
    kept = PricingLedger(ledger).finals(f"{namespace}/daily")
    assert [f.period_start_ms for f in kept] == [previous.start_ms]
    ledger.close()


def test_invalid_reports_get_clear_conditions(
    operator: Operator, live: Live, api_client: client.ApiClient, namespace: str
) -> None:
    objects = client.CustomObjectsApi(api_client)
    pricing = create_pricing(api_client, live, "maas")
    period = {"start": _iso(live.start_ms + 3_600_000), "end": _iso(live.start_ms + 25 * 3_600_000)}
    cases = {
        "no-pricing": report_body("no-pricing", "does-not-exist", period=period),
        "bad-selector": report_body(
            "bad-selector",
            pricing,
            period=period,
            source={"selector": 'model="x"} or vector(1) or {a="b"'},
        ),
        "good": report_body("good", pricing, period=period),
    }
    for body in cases.values():
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "usagereports", body)

    def ready(name: str) -> dict[str, Any]:
        return condition(get_report(api_client, namespace, name), "Ready")

    missing = wait_for(
        lambda: ready("no-pricing").get("reason") == "PricingNotFound" and ready("no-pricing"),
        what="PricingNotFound",
    )
    assert missing["status"] == "False"
    assert "TierPricing 'does-not-exist' does not exist" in missing["message"]
    bad = wait_for(
        lambda: ready("bad-selector").get("reason") == "InvalidSelector" and ready("bad-selector"),
        what="InvalidSelector",
    )
    assert "must be label matchers only" in bad["message"]
    good = wait_for(
        lambda: ready("good").get("status") == "True" and get_report(api_client, namespace, "good"),
        what="good report Ready",
    )
    tokens, cost = hand_cost(
        live, live.start_ms + 3_600_000, live.start_ms + 25 * 3_600_000, [(0, PRICES)]
    )
    assert good["status"]["totals"] == {"tokens": tokens, "cost": cost, "unpricedTokens": 0}


def test_prometheus_outage_is_reported_and_recovered(
    operator: Operator, live: Live, api_client: client.ApiClient, namespace: str
) -> None:
    objects = client.CustomObjectsApi(api_client)
    pricing = create_pricing(api_client, live, "maas")
    objects.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "usagereports",
        report_body(
            "live", pricing, schedule={"interval": "daily", "timeZone": local_zone_near_midday()}
        ),
    )
    wait_for(
        lambda: (
            condition(get_report(api_client, namespace, "live"), "Ready").get("status") == "True"
        ),
        what="Ready",
    )
    live.prometheus.stop()
    try:
        down = wait_for(
            lambda: (
                (c := condition(get_report(api_client, namespace, "live"), "SourceAvailable")).get(
                    "status"
                )
                == "False"
                and c
            ),
            what="SourceAvailable=False",
        )
        assert "is unreachable" in down["message"]
        report = get_report(api_client, namespace, "live")
        assert condition(report, "Ready")["status"] == "False"
        assert report["status"]["totals"]["tokens"] > 0  # the last good numbers stay
    finally:
        live.prometheus.start()
    wait_for(
        lambda: (
            condition(get_report(api_client, namespace, "live"), "SourceAvailable").get("status")
            == "True"
        ),
        what="SourceAvailable=True again",
    )
    with contextlib.suppress(ApiException):
        objects.delete_cluster_custom_object(GROUP, VERSION, "tierpricings", pricing)


def _iso(t_ms: int) -> str:
    return dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_api_server_restart_and_http_exports(
    operator: Operator,
    live: Live,
    api_client: client.ApiClient,
    control_plane: ControlPlane,
    namespace: str,
) -> None:
    objects = client.CustomObjectsApi(api_client)
    pricing = create_pricing(api_client, live, "maas")
    start, end = live.start_ms + 2 * 3_600_000, live.start_ms + 8 * 3_600_000
    period = {"start": _iso(start), "end": _iso(end)}
    objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "usagereports", report_body("before", pricing, period=period)
    )
    wait_for(lambda: condition(get_report(api_client, namespace, "before"), "Ready").get("status")
             == "True", what="Ready before the restart")  # fmt: skip

    control_plane.restart_apiserver()
    objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "usagereports", report_body("after", pricing, period=period)
    )
    after = wait_for(lambda: (r := get_report(api_client, namespace, "after"))
                     and condition(r, "Ready").get("status") == "True" and r,
                     timeout=120, what="Ready after the restart")  # fmt: skip
    assert after["status"]["totals"]["tokens"] == hand_cost(live, start, end, [(0, PRICES)])[0]

    # The finalised period is served over HTTP, identical to its ConfigMap export.
    code, served = operator.get(f"/reports/{namespace}/after/{_iso(start)}.json")
    assert code == 200
    config_map = client.CoreV1Api(api_client).read_namespaced_config_map(
        after["status"]["exports"][0], namespace
    )
    assert served == config_map.data["report.json"]
    assert json.loads(served)["finalized"] is True
    assert operator.get(f"/reports/{namespace}/after/current.csv") == (
        200,
        config_map.data["report.csv"],
    )


def _reconciles(operator: Operator) -> float:
    code, text = operator.get("/metrics")
    assert code == 200, text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('chargeback_reconciles_total{kind="UsageReport"')
    )


def test_steady_state_writes_no_status(
    operator: Operator, live: Live, api_client: client.ApiClient, namespace: str
) -> None:
    """Refreshes that find the same numbers write nothing: the object's resourceVersion, and
    its export ConfigMaps', hold still over five refresh intervals while the operator keeps
    reconciling (the open period's dataThrough moves on each refresh)."""
    pricing = create_pricing(api_client, live, "steady")
    schedule = {"interval": "daily", "timeZone": local_zone_near_midday()}
    body = report_body("steady", pricing, schedule=schedule)
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "usagereports", body
    )
    wait_ready(api_client, namespace, "steady")
    window, refresh = 15.0, 3.0  # the operator fixture refreshes every 3 s

    def versions() -> tuple[str, dict[str, str]]:
        report = get_report(api_client, namespace, "steady")["metadata"]["resourceVersion"]
        maps = client.CoreV1Api(api_client).list_namespaced_config_map(
            namespace, label_selector="chargeback.dev/report=steady"
        )
        return report, {m.metadata.name: m.metadata.resource_version for m in maps.items}

    def quiet_window() -> tuple[float, float] | None:
        version = versions()
        before = _reconciles(operator)
        deadline = time.monotonic() + window
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if versions() != version:
                return None
        return before, _reconciles(operator)

    # The first refreshes finalise the previous day; after that nothing changes.
    before, after = wait_for(quiet_window, timeout=120, what="five refreshes without a write")
    assert after - before >= window / refresh - 2  # it did refresh, and wrote nothing
    assert len(versions()[1]) == 2  # the exports of the open and the finalised day are there


def test_a_dashboard_that_cannot_be_written_does_not_stop_the_report(
    live: Live, api_client: client.ApiClient, namespace: str, request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A careless setting (a dashboard namespace that does not exist) costs the dashboard only:
    the report is Ready with its numbers, and an event on it says what to fix."""
    monkeypatch.setenv("CHARGEBACK_DASHBOARD_NAMESPACE", "no-such-namespace")
    request.getfixturevalue("operator")
    pricing = create_pricing(api_client, live, "nodash")
    schedule = {"interval": "daily", "timeZone": local_zone_near_midday()}
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "usagereports", report_body("nodash", pricing, schedule=schedule)
    )
    report = wait_ready(api_client, namespace, "nodash")
    assert report["status"]["totals"]["tokens"] > 0

    def warning() -> str:
        events = client.CoreV1Api(api_client).list_namespaced_event(namespace).items
        return next((e.message for e in events if e.reason == "DashboardNotProvisioned"
                     and e.involved_object.name == "nodash"), "")  # fmt: skip

    message = wait_for(warning, timeout=60, what="DashboardNotProvisioned event")
    assert "namespace no-such-namespace" in message
    assert "not found" in message
