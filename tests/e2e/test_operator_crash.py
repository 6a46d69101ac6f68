"""The operator SIGKILLed again and again while it collects and finalises: nothing counted twice,
nothing lost, no finalised document changed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from kubernetes import client

from chargeback.adapters.ledger import Ledger, SourceKind
from chargeback.adapters.pricing_ledger import PricingLedger
from chargeback.domain.periods import scheduled_period
from chargeback.testing.kube import ClusterAccess
from chargeback.testing.process import free_port
from tests.e2e.conftest import (
    GROUP,
    VERSION,
    Live,
    condition,
    get_report,
    local_zone_near_midday,
    wait_for,
)
from tests.e2e.test_operator import (
    PRICES,
    create_pricing,
    hand_cost,
    report_body,
)
from tests.integration.conftest import differences, ledger_totals


def start_operator(
    cluster: ClusterAccess, live: Live, dsn: str, log: Path, *more: str
) -> subprocess.Popen[bytes]:
    """`chargeback run` as a process over ``live``, with ``more`` flags (default metrics port:
    a free one)."""
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    metrics = [] if "--metrics-port" in more else ["--metrics-port", str(free_port())]
    args = [sys.executable, "-m", "chargeback", "run", "--prometheus-url", live.prometheus.url,
            "--token-file", "", "--ca-file", "", "--ledger", dsn, "--refresh-seconds", "2",
            *metrics, "--liveness-port", str(free_port()), *more]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


def test_sigkill_during_collection_and_finalisation(
    live: Live, cluster: ClusterAccess, chargeback_crds: None, api_client: client.ApiClient,
    namespace: str, tmp_path: Path,
) -> None:  # fmt: skip
    objects = client.CustomObjectsApi(api_client)
    pricing = create_pricing(api_client, live, "maas")
    zone = local_zone_near_midday()
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "usagereports", report_body(
        "daily", pricing, schedule={"interval": "daily", "timeZone": zone}))  # fmt: skip
    dsn = f"sqlite:///{tmp_path / 'ledger.db'}"
    log = tmp_path / "operator.log"
    rng = random.Random(5)
    for _ in range(5):
        proc = start_operator(cluster, live, dsn, log)
        time.sleep(rng.uniform(2.0, 6.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    proc = start_operator(cluster, live, dsn, log)
    try:
        report = wait_for(lambda: (r := get_report(api_client, namespace, "daily"))
                          and condition(r, "Ready").get("status") == "True"
                          and r["status"].get("finalized") and r, timeout=120,
                          what="Ready with a finalised period")  # fmt: skip
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    period = scheduled_period(int(time.time() * 1000), "daily", zone)
    previous = scheduled_period(period.start_ms - 1, "daily", zone)
    final = report["status"]["finalized"][0]
    assert (final["tokens"], final["cost"]) == hand_cost(
        live, previous.start_ms, previous.end_ms, [(0, PRICES)]
    )
    ledger = Ledger(dsn)
    (source,) = [s for s in ledger.list_sources() if s.kind is SourceKind.TOKENS]
    history = live.sim.truth(source.start_ms, source.watermark_ms)
    assert differences(ledger_totals(ledger, source.id), history) == {}
    finals = PricingLedger(ledger).finals(f"{namespace}/daily")
    assert [f.period_start_ms for f in finals] == [previous.start_ms]
    ledger.close()
