"""Benchmark: 1,000 UsageReports over 100 sources, from creation to all Ready, then at rest.

At rest (unchanged data) the status writes of a refresh are counted.

Against a real control plane and Prometheus, with the operator as a process (`chargeback run`).
``python -m benchmarks.operator_bench`` prints the figures and records them in
benchmarks/results.json.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from kubernetes import client

from benchmarks import results
from chargeback.adapters.kube import client_from_kubeconfig
from chargeback.api.budget import Budget
from chargeback.api.pricing import TierPricingSpec
from chargeback.api.report import Attribution, PeriodSummary
from chargeback.domain.attribution import TeamResolver
from chargeback.domain.periods import Period
from chargeback.domain.pricing import PriceBook, PriceVersion
from chargeback.domain.reports import build_document
from chargeback.domain.usage import UsageRow
from chargeback.services import budgets as budget_service
from chargeback.services.status import summarize
from chargeback.testing.kube import ClusterAccess, ControlPlane, install_crds
from chargeback.testing.process import free_port
from chargeback.testing.prometheus import PrometheusServer
from chargeback.testing.simulator import HOUR_MS, Scenario, simulate

ROOT = Path(__file__).resolve().parent.parent
GROUP, VERSION = "chargeback.dev", "v1alpha1"


def _ready(api: client.ApiClient, namespace: str) -> tuple[int, int]:
    items = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "usagereports"
    )["items"]
    ready = sum(
        1 for item in items
        if any(c["type"] == "Ready" and c["status"] == "True"
               for c in item.get("status", {}).get("conditions", []))
    )  # fmt: skip
    largest = max((len(json.dumps(i.get("status", {}))) for i in items), default=0)
    return ready, largest


def _hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


STEADY_S = 120
"""How long the steady state is watched (four refreshes of 30 s)."""


def _versions(api: client.ApiClient, namespace: str) -> dict[str, str]:
    items = client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "usagereports"
    )["items"]
    return {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in items}


def _api_requests(access: ClusterAccess) -> Counter[str]:
    """Requests the API server has served on resources, per verb and resource.

    From its ``apiserver_request_total`` (e.g. ``"GET usagereports"``).
    """
    response = requests.get(
        f"{access.server}/metrics",
        headers={"Authorization": f"Bearer {access.admin_token}"},
        verify=str(access.ca_file),
        timeout=30,
    )
    response.raise_for_status()
    served: Counter[str] = Counter()
    for line in response.text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if labels.get("resource"):
            served[f"{labels.get('verb', '?')} {labels['resource']}"] += int(
                float(line.rsplit(" ", 1)[1])
            )
    return served


def run_operator_scale(reports: int = 1000, sources: int = 100) -> dict[str, Any]:
    """Create the reports at once, time convergence, then count status writes at rest."""
    with tempfile.TemporaryDirectory(prefix="bench-operator-") as scratch:
        workdir = Path(scratch)
        now = int(time.time() * 1000)
        start = (now - 26 * HOUR_MS) // HOUR_MS * HOUR_MS
        sim = simulate(Scenario(start_ms=start, hours=26, users=100, replicas=2, seed=4))
        with (
            ControlPlane() as access,
            PrometheusServer(
                workdir / "prom", openmetrics=sim.write_openmetrics(workdir / "t.om")
            ) as prom,
        ):
            api = client_from_kubeconfig(access.kubeconfig)
            install_crds(api, ROOT / "crds")
            objects = client.CustomObjectsApi(api)
            client.CoreV1Api(api).create_namespace({"metadata": {"name": "bench"}})
            effective = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start / 1000))
            objects.create_cluster_custom_object(GROUP, VERSION, "tierpricings", {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "TierPricing",
                "metadata": {"name": "p"},
                "spec": {"currency": "USD", "effectiveFrom": effective, "tiers": [
                    {"name": t, "price": "0.01"} for t in ("free", "premium", "enterprise")]},
            })  # fmt: skip
            env = {**os.environ, "KUBECONFIG": str(access.kubeconfig)}
            args = [sys.executable, "-m", "chargeback", "run", "--prometheus-url", prom.url,
                    "--token-file", "", "--ca-file", "", "--refresh-seconds", "30",
                    # The platform team's own namespace: its reports see all usage (no UsageScope).
                    "--admin-namespaces", "bench",
                    "--ledger", f"sqlite:///{workdir / 'ledger.db'}",
                    "--metrics-port", str(free_port()),
                    "--liveness-port", str(free_port())]  # fmt: skip
            with (workdir / "operator.log").open("wb") as log:
                operator = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                time.sleep(3)
                began = time.perf_counter()
                for index in range(reports):
                    selector = f'model!="",user!="x{index % sources}"'
                    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "UsageReport",
                            "metadata": {"name": f"r{index:03d}"},
                            "spec": {"pricingRef": {"name": "p"},
                                     "source": {"selector": selector},
                                     "schedule": {"interval": "daily"}}}  # fmt: skip
                    objects.create_namespaced_custom_object(
                        GROUP, VERSION, "bench", "usagereports", body
                    )
                ready, largest = 0, 0
                deadline = time.perf_counter() + 900
                while time.perf_counter() < deadline and operator.poll() is None:
                    ready, largest = _ready(api, "bench")
                    if ready == reports:
                        break
                    time.sleep(1)
                elapsed = time.perf_counter() - began
                # Steady state: the data does not change; a refresh that finds the same numbers
                # writes nothing. Count the reports written to while watching.
                time.sleep(35)  # the refresh in flight when the last report turned Ready ends
                requests_before = _api_requests(access)
                before = _versions(api, "bench")
                time.sleep(STEADY_S)
                after = _versions(api, "bench")
                # The operator is the only other client; the two lists above are ours.
                by_kind = _api_requests(access) - requests_before
                by_kind["LIST usagereports"] -= 2
                served = sum(by_kind.values())
                written = sum(1 for name, version in after.items() if before.get(name) != version)
                rss = _hwm_mib(operator.pid)
            finally:
                operator.send_signal(signal.SIGTERM)
                operator.wait(timeout=60)
        per_hour = written / max(reports, 1) * 3600 / STEADY_S
        requests_per_hour = served / max(reports, 1) * 3600 / STEADY_S
        return {"reports": reports, "sources": sources, "ready": ready, "seconds": elapsed,
                "operator_peak_rss_mib": rss, "largest_status_bytes": largest,
                "steady_writes_per_report_hour": per_hour, "steady_written": written,
                "steady_requests": served,
                "steady_requests_by_kind": dict(by_kind.most_common(8)),
                "steady_requests_per_report_hour": requests_per_hour}  # fmt: skip


def record(figures: dict[str, Any]) -> None:
    """The entries of benchmarks/results.json."""
    count = f"{figures['reports']:,} reports over {figures['sources']} sources"
    results.record([
        results.entry(f"{count}: all Ready after creation", figures["seconds"], "s", None, 180),
        results.entry(f"{count}: operator peak RSS", figures["operator_peak_rss_mib"], "MiB",
                      None, 400),
        results.entry(f"{count}: status writes per report per hour at rest",
                      figures["steady_writes_per_report_hour"], "writes", None, 0),
        results.entry(f"{count}: API requests per report per hour at rest",
                      figures["steady_requests_per_report_hour"], "requests", None, None),
    ])  # fmt: skip


def status_at(users: int) -> dict[str, Any]:
    """The status summary of a report with ``users`` users (long names, 120 finalised periods)."""
    spec = TierPricingSpec.model_validate(
        {"currency": "USD", "tiers": [{"name": t, "price": "0.01"} for t in ("free", "premium")]}
    )
    rows = [
        UsageRow(hour * HOUR_MS, f"user-{i:05d}-{'x' * 40}", ("free", "premium")[i % 2],
                 f"model-{i % 80:02d}-{'m' * 30}", (("cost_center", f"cc-{i % 300:03d}-team"),),
                 1000 + i)
        for i in range(users)
        for hour in (0, 1)
    ]  # fmt: skip
    document = build_document(
        report="ns/r", period=Period(0, 24 * HOUR_MS), usage=rows,
        book=PriceBook([PriceVersion(1, 0, spec)]),
        teams=TeamResolver(Attribution(team_label="cost_center")), data_through_ms=24 * HOUR_MS,
        top_n=50,
    )  # fmt: skip
    finals = [PeriodSummary.model_validate({
        "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", "tokens": 10**12,
        "cost": "123456789.01"})] * 120  # fmt: skip
    exports = [f"r-2026010{i}t0000" for i in range(9)]
    status = summarize(document, top_users=50, finals=finals, exports=exports,
                       now_ms=2 * 24 * HOUR_MS)  # fmt: skip
    # The most budgets a report may have, each on a user with the longest name allowed.
    budgets = [
        Budget(name=f"b{i:02d}", amount="1", scope="user", match=f"user-{i:05d}-" + "u" * 242,
               thresholds=list(range(10, 101, 10)))
        for i in range(20)
    ]  # fmt: skip
    found = budget_service.readings(budgets, document, {})
    status = status.model_copy(update={"budgets": budget_service.statuses(found, "USD")})
    dumped: dict[str, Any] = status.model_dump(mode="json", by_alias=True)
    return dumped


if __name__ == "__main__":
    measured = run_operator_scale()
    record(measured)
    print(json.dumps(measured, indent=2))
