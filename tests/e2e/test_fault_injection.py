"""A failure at any step of a report's reconciliation ends as a condition, and goes away with it.

The operator's object graph is built as `chargeback run` builds it (real API server, Prometheus
and ledger); each step of the UsageReport reconciliation is made to fail once, then not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from chargeback.app.root import Operator, build_operator
from chargeback.app.settings import OperatorSettings
from chargeback.services import exports, report_metrics, usage_report
from tests.e2e.conftest import GROUP, VERSION, Live
from tests.e2e.test_operator import _iso, create_pricing, report_body

STEPS = [
    # (where, attribute, the step it stands for)
    (exports, "write_export", "writing the export ConfigMaps"),
    (usage_report, "summarize", "building the status summary"),
    (report_metrics, "publish", "publishing metrics"),
    (usage_report.Tenancy, "authorize", "authorising against the scopes"),
    (usage_report.ReportService, "render", "collecting and rendering"),
    (usage_report.PricingReconciler, "price_book", "reading the price book"),
]


class Injected(RuntimeError):
    pass


@pytest.fixture
def built(
    live: Live, api_client: client.ApiClient, chargeback_crds: None, tmp_path: Path
) -> Iterator[Operator]:
    settings = OperatorSettings(prometheus_url=live.prometheus.url, prometheus_token_file="",
                                prometheus_ca_file="", ledger=f"sqlite:///{tmp_path / 'l.db'}",
                                gpu_costs=False)  # fmt: skip
    operator = build_operator(settings, api_client)
    yield operator
    operator.close()


@pytest.mark.parametrize(("where", "attribute", "step"), STEPS, ids=[s[2] for s in STEPS])
def test_a_failing_step_is_a_condition_and_recovers(
    built: Operator, live: Live, api_client: client.ApiClient, namespace: str,
    monkeypatch: pytest.MonkeyPatch, where: Any, attribute: str, step: str,
) -> None:  # fmt: skip
    pricing = create_pricing(api_client, live, "inject")
    stored = client.CustomObjectsApi(api_client).get_cluster_custom_object(
        GROUP, VERSION, "tierpricings", pricing
    )
    built.pricing.reconcile(pricing, stored["spec"], 1, {})
    start = live.start_ms + 2 * 3_600_000
    period = {"start": _iso(start), "end": _iso(start + 2 * 3_600_000)}
    body = client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "usagereports", report_body("r", pricing, period=period)
    )

    def reconcile(status: dict[str, Any]) -> Any:
        return built.reports.reconcile(namespace, "r", body["metadata"]["uid"],
                                       spec=body["spec"], generation=1, status=status)  # fmt: skip

    def fail(*_: Any, **__: Any) -> Any:
        raise Injected(f"injected failure while {step}")

    monkeypatch.setattr(where, attribute, fail)
    failed = reconcile({})
    ready = next(c for c in failed.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ReconcileFailed")
    assert f"Injected: injected failure while {step}" in ready["message"]
    assert failed.failure is not None
    assert [e.reason for e in failed.events] == ["ReconcileFailed"]

    monkeypatch.undo()
    recovered = reconcile(failed.status)
    ready = next(c for c in recovered.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Reconciled")
    assert recovered.status["totals"]["tokens"] > 0
