"""Scale-out: two operator processes, each watching its own namespace, on one PostgreSQL ledger.
Both converge; the source their reports share is collected by both at once and stays exact."""

from __future__ import annotations

import re
import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from chargeback.adapters.ledger import Ledger, SourceKind
from chargeback.adapters.pricing_ledger import PricingLedger
from chargeback.domain.periods import scheduled_period
from chargeback.testing.kube import ClusterAccess
from chargeback.testing.process import free_port
from tests.conftest import TEST_TENANCY
from tests.e2e.conftest import (
    GROUP,
    VERSION,
    Live,
    condition,
    get_report,
    local_zone_near_midday,
    wait_for,
)
from tests.e2e.test_operator import PRICES, create_pricing, hand_cost, report_body
from tests.e2e.test_operator_crash import start_operator
from tests.integration.conftest import differences, ledger_totals


@pytest.fixture
def two_namespaces(api_client: client.ApiClient) -> Iterator[list[str]]:
    core = client.CoreV1Api(api_client)
    names = [f"scale-out-{i}-{uuid.uuid4().hex[:6]}" for i in range(2)]
    for name in names:
        metadata = client.V1ObjectMeta(name=name, labels=TEST_TENANCY)
        core.create_namespace(client.V1Namespace(metadata=metadata))
    yield names
    for name in names:
        core.delete_namespace(name)


def test_two_operators_share_one_postgresql_ledger(
    live: Live, cluster: ClusterAccess, chargeback_crds: None, api_client: client.ApiClient,
    two_namespaces: list[str], pg_dsn: str, tmp_path: Path,
) -> None:  # fmt: skip
    objects = client.CustomObjectsApi(api_client)
    pricing = create_pricing(api_client, live, "scale-out")
    zone = local_zone_near_midday()
    body = report_body("daily", pricing, schedule={"interval": "daily", "timeZone": zone})
    for namespace in two_namespaces:
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "usagereports", body)
    logs = [tmp_path / f"operator-{i}.log" for i in range(2)]
    ports = [free_port(), free_port()]
    # Started together: both collect the reports' one source from the same watermark.
    procs = [
        start_operator(cluster, live, pg_dsn, log, "--namespace", ns, "--metrics-port", str(port))
        for ns, log, port in zip(two_namespaces, logs, ports, strict=True)
    ]
    try:
        reports = [
            wait_for(
                lambda ns=ns: (
                    (r := get_report(api_client, ns, "daily"))
                    and condition(r, "Ready").get("status") == "True"
                    and r["status"].get("finalized")
                    and r
                ),
                timeout=180,
                what=f"Ready with a finalised period in {ns}",
            )
            for ns in two_namespaces
        ]
        # Each operator serves its own namespace only: its metrics show its own report.
        for mine, port in enumerate(ports):
            request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                headers={"Authorization": f"Bearer {cluster.admin_token}"})  # fmt: skip
            exposition = urllib.request.urlopen(request, timeout=10).read()  # noqa: S310
            served = set(re.findall(r'chargeback_report_tokens\{[^}]*namespace="([^"]+)"',
                                    exposition.decode()))  # fmt: skip
            assert served == {two_namespaces[mine]}
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
    period = scheduled_period(int(time.time() * 1000), "daily", zone)
    previous = scheduled_period(period.start_ms - 1, "daily", zone)
    expected = hand_cost(live, previous.start_ms, previous.end_ms, [(0, PRICES)])
    for report in reports:
        final = report["status"]["finalized"][0]
        assert (final["tokens"], final["cost"]) == expected
    # One source in the ledger, collected by both, exact against the simulator's truth.
    ledger = Ledger(pg_dsn)
    try:
        (source,) = [s for s in ledger.list_sources() if s.kind is SourceKind.TOKENS]
        # The TierPricing both instances reconcile has one version, not one per instance.
        assert len(PricingLedger(ledger).versions(pricing)) == 1
        history = live.sim.truth(source.start_ms, source.watermark_ms)
        assert differences(ledger_totals(ledger, source.id), history) == {}
    finally:
        ledger.close()
