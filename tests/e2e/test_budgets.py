"""Budgets on real parts: the operator's status, events and metrics as simulated traffic
accrues, across an operator restart, and the alerts a real Prometheus evaluates from the rules
`chargeback alerts` writes and a real Alertmanager delivers to a webhook receiver."""

from __future__ import annotations

import subprocess
import uuid
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chargeback.api.budget import Budget
from chargeback.domain.alerts import budget_rules
from chargeback.domain.buckets import HOUR_MS
from chargeback.domain.reports import iso
from chargeback.testing.alertmanager import AlertmanagerServer, WebhookReceiver
from chargeback.testing.process import free_port
from chargeback.testing.prometheus import PrometheusServer
from tests.conftest import CleanInstall
from tests.e2e.conftest import (
    GROUP,
    VERSION,
    Live,
    Operator,
    OperatorFactory,
    foreign_crd,
    get_report,
    wait_for,
)
from tests.e2e.test_operator import PRICES, create_pricing, report_body

BUDGET_REASONS = ("BudgetThresholdReached", "BudgetExceeded", "ProjectedToExceed")


def team_cost(live: Live, users: set[str], start: int, end: int) -> Decimal:
    """The cost of ``users`` in [start, end), priced by hand from the simulator's truth."""
    per_line: dict[tuple[str, str, str], int] = defaultdict(int)
    for (user, tier, model, _), count in live.sim.truth(start, end).items():
        if user in users:
            per_line[(user, tier, model)] += count
    cost = Decimal(0)
    for (_, tier, _), tokens in per_line.items():
        cost += (Decimal(PRICES[tier]) * tokens / 1000).quantize(Decimal("0.01"))
    return cost


def budget_events(api: client.ApiClient, namespace: str, report: str) -> list[tuple[str, str]]:
    """(reason, message) of the budget events posted on the report, oldest first."""
    items = client.CoreV1Api(api).list_namespaced_event(namespace).items
    found = [e for e in items
             if e.involved_object.name == report and e.reason in BUDGET_REASONS]  # fmt: skip
    found.sort(key=lambda e: (e.first_timestamp or e.event_time, e.metadata.name))
    return [(e.reason, e.message) for e in found for _ in range(e.count or 1)]


def test_budget_crossings_are_announced_once_and_alert_through_alertmanager(
    operator_factory: OperatorFactory,
    live: Live,
    api_client: client.ApiClient,
    namespace: str,
    clean_install: CleanInstall,
    tmp_path: Path,
) -> None:
    users = sorted({key[1][0] for key in live.sim.samples})
    ml, web = set(users[::2]), set(users[1::2])
    start, end = live.start_ms, live.start_ms + 48 * HOUR_MS
    # The ml team reaches its amount at hour 30 of the period; web stays far below its own.
    ml_amount = team_cost(live, ml, start, start + 30 * HOUR_MS)
    web_amount = team_cost(live, web, start, end) * 10
    pricing = create_pricing(api_client, live, "budget")
    name = f"budget-{uuid.uuid4().hex[:6]}"
    manifest = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "UsageReport",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "pricingRef": {"name": pricing},
            "attribution": {"teams": [{"name": "ml", "users": sorted(ml)},
                                      {"name": "web", "users": sorted(web)}]},
            "period": {"start": iso(start), "end": iso(end)},
            "budgets": [
                {"name": "ml-gpu", "scope": "team", "match": "ml", "amount": str(ml_amount)},
                {"name": "web-gpu", "scope": "team", "match": "web", "amount": str(web_amount)},
            ],
        },
    }  # fmt: skip
    (tmp_path / "report.yaml").write_text(yaml.safe_dump(manifest))
    # The rules as a user without prometheus-operator writes them: the installed CLI.
    subprocess.run([str(clean_install.bin / "chargeback"), "alerts", "--report", "report.yaml",
                    "--output", "rules.yaml"], cwd=tmp_path, check=True)  # fmt: skip

    now = [start + 12 * HOUR_MS]
    port = free_port()
    first = operator_factory(clock=lambda: now[0], metrics_port=port, history_days=0)
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "usagereports", manifest
    )
    with (
        WebhookReceiver() as receiver,
        AlertmanagerServer(receiver.url) as alertmanager,
        PrometheusServer(
            tmp_path / "prom", scrape_targets=[f"127.0.0.1:{port}"], scrape_token=first.token,
            rule_files=[tmp_path / "rules.yaml"], alertmanager=alertmanager.url,
        ) as prometheus,
    ):  # fmt: skip
        refreshed = _refreshed(api_client, namespace, name)

        # Hour 12: 40% spent, steady traffic projects 160%: the projection alone is announced.
        ml_status, web_status = refreshed(now[0])
        assert ml_status["state"] == "warning"
        assert Decimal(ml_status["projected"]) > ml_amount > Decimal(ml_status["spent"])
        assert ml_status["projectedOverrun"] is True
        assert web_status["state"] == "ok"
        assert "projected" in web_status
        assert not web_status["projectedOverrun"]
        projection = wait_for(lambda: _firing(receiver, "ChargebackBudgetProjectedOverrun"),
                              what="the projection alert at the webhook")  # fmt: skip
        assert projection[0]["labels"]["team"] == "ml"
        assert _firing(receiver, "ChargebackBudgetThreshold") == []

        # Hours 20 and 26: 50% then 80%, each announced once.
        for hour in (20, 26):
            now[0] = start + hour * HOUR_MS
            ml_status, _ = refreshed(now[0])
        assert ml_status["crossed"] == [50, 80]
        at80 = wait_for(lambda: [a for a in _firing(receiver, "ChargebackBudgetThreshold")
                                 if a["labels"]["threshold"] == "80"],
                        what="the 80% alert at the webhook")  # fmt: skip
        assert at80[0]["labels"]["team"] == "ml"
        assert at80[0]["labels"]["report"] == name
        assert at80[0]["labels"]["severity"] == "warning"

        # The operator goes away; spending passes 100% meanwhile; a new one takes over.
        first.stop()
        now[0] = start + 34 * HOUR_MS
        operator_factory(clock=lambda: now[0], metrics_port=port, history_days=0,
                         ledger=first.ledger_dsn)  # fmt: skip
        ml_status, web_status = refreshed(now[0])
        assert ml_status["state"] == "exceeded"
        assert ml_status["crossed"] == [50, 80, 100]
        assert ml_status["remaining"] == "0.00"
        report = get_report(api_client, namespace, name)
        within = next(c for c in report["status"]["conditions"] if c["type"] == "WithinBudget")
        assert (within["status"], within["reason"]) == ("False", "BudgetExceeded")
        assert "budget ml-gpu (team ml)" in within["message"]
        at100 = wait_for(lambda: [a for a in _firing(receiver, "ChargebackBudgetThreshold")
                                  if a["labels"]["threshold"] == "100"],
                         what="the 100% alert at the webhook")  # fmt: skip
        assert at100[0]["labels"]["severity"] == "critical"
        assert at100[0]["labels"]["team"] == "ml"
        # The projection came first, before spending got there.
        arrived = [a["labels"]["alertname"] + a["labels"].get("threshold", "")
                   for a in receiver.firing()]  # fmt: skip
        assert arrived.index("ChargebackBudgetProjectedOverrun") < arrived.index(
            "ChargebackBudgetThreshold100"
        )
        # The team that stays within its budget raised nothing.
        assert not [a for a in receiver.firing() if a["labels"]["budget"] == "web-gpu"]
        spent = prometheus.query(f'chargeback_budget_spent{{report="{name}",budget="ml-gpu"}}')
        assert Decimal(str(spent[0]["value"][1])) == Decimal(ml_status["spent"])  # type: ignore[index]

        # A later refresh of the same period says nothing new.
        now[0] = start + 40 * HOUR_MS
        refreshed(now[0])

    events = wait_for(lambda: (found := budget_events(api_client, namespace, name))
                      and len(found) >= 4 and found, what="the budget events")  # fmt: skip
    expected = [
        ("ProjectedToExceed", f"budget ml-gpu (team ml) is projected to pass {ml_amount} USD "
                              "before the period ends, around "),
        ("BudgetThresholdReached", "budget ml-gpu (team ml) reached 50%: "),
        ("BudgetThresholdReached", "budget ml-gpu (team ml) reached 80%: "),
        ("BudgetExceeded", "budget ml-gpu (team ml) reached 100%: "),
    ]  # fmt: skip
    assert len(events) == len(expected), events
    for (reason, message), (want_reason, want_start) in zip(events, expected, strict=True):
        assert reason == want_reason, events
        assert message.startswith(want_start), events


def _firing(receiver: WebhookReceiver, alert: str) -> list[dict[str, Any]]:
    return [a for a in receiver.firing() if a["labels"]["alertname"] == alert
            and a["labels"]["budget"] == "ml-gpu"]  # fmt: skip


def _refreshed(
    api: client.ApiClient, namespace: str, name: str
) -> Callable[[int], tuple[dict[str, Any], dict[str, Any]]]:
    """Wait until the report shows data of the clock's time; its two budgets' status."""

    def wait(clock_ms: int) -> tuple[dict[str, Any], dict[str, Any]]:
        def shown() -> Any:
            status = get_report(api, namespace, name).get("status", {})
            return status.get("lastRefreshTime") == iso(clock_ms) and status["budgets"]

        ml_status, web_status = wait_for(shown, what=f"the report refreshed at {iso(clock_ms)}")
        return ml_status, web_status

    return wait


RULES_CRD = foreign_crd("monitoring.coreos.com", "v1", "PrometheusRule", "prometheusrules")


def test_prometheus_rule_follows_the_budgets(
    operator: Operator, live: Live, api_client: client.ApiClient, namespace: str
) -> None:
    """Where prometheus-operator's API exists, the report owns a PrometheusRule of its budgets:
    made, updated on an edit, deleted when the budgets go."""
    ext = client.ApiextensionsV1Api(api_client)
    objects = client.CustomObjectsApi(api_client)
    ext.create_custom_resource_definition(RULES_CRD)
    try:
        pricing = create_pricing(api_client, live, "rules")
        budget = {"name": "all", "amount": "1000"}
        period = {"start": iso(live.start_ms), "end": iso(live.start_ms + 24 * HOUR_MS)}
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "usagereports",
                                                report_body("r", pricing, period=period,
                                                            budgets=[budget]))  # fmt: skip

        def rule() -> dict[str, Any] | None:
            try:
                found = objects.get_namespaced_custom_object(
                    "monitoring.coreos.com", "v1", namespace, "prometheusrules", "r-budgets"
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
                return None
            return dict(found)

        made = wait_for(rule, what="the PrometheusRule")
        owner = made["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("UsageReport", "r")
        expected = budget_rules(namespace, "r", [Budget.model_validate(budget)])["groups"]
        assert made["spec"]["groups"] == expected
        assert len(made["spec"]["groups"][0]["rules"]) == 4  # 50, 80, 100 % and the projection

        # Merge patches of the spec: the operator writes the status meanwhile (a replace of the
        # object read before would conflict with that write).
        budgets = get_report(api_client, namespace, "r")["spec"]["budgets"]
        budgets[0]["thresholds"] = [90]
        objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, "usagereports", "r",
                                               {"spec": {"budgets": budgets}})  # fmt: skip
        wait_for(lambda: (r := rule()) and len(r["spec"]["groups"][0]["rules"]) == 2,
                 what="the PrometheusRule updated")  # fmt: skip
        objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, "usagereports", "r",
                                               {"spec": {"budgets": None}})  # fmt: skip
        wait_for(lambda: rule() is None, what="the PrometheusRule deleted with the budgets")
        report = get_report(api_client, namespace, "r")
        assert all(c["type"] != "WithinBudget" for c in report["status"]["conditions"])
        assert report["status"].get("budgets", []) == []
    finally:
        ext.delete_custom_resource_definition(RULES_CRD["metadata"]["name"])
