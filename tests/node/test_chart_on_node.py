"""A release installed on a real node: `make release`, then `helm install oci://...`, end to end.

The chart comes from the registry `make release` pushed it to (tests/conftest.py), installed
with the command of docs/install-openshift.md (route b) into a namespace under Pod Security
"restricted"; the kubelet pulls the image it names from that registry and runs it with the
chart's security context, probes, projected ServiceAccount token and a local PersistentVolume
for the ledger. The samples of docs/examples/ are applied with kubectl as a user types them,
against simulated MaaS traffic of their pilot week in a Prometheus the pod reaches on the host's
address.
"""

from __future__ import annotations

import json
import shlex
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from chargeback.adapters.kube import client_from_kubeconfig
from chargeback.testing.demo import expected
from chargeback.testing.node import HOST_IP, STORAGE_CLASS, Node
from chargeback.testing.prometheus import PrometheusServer
from chargeback.testing.simulator import Simulation
from chargeback.testing.tools import binary
from tests.conftest import REPOSITORY, ROOT, VERSION_TAG, Release
from tests.e2e.conftest import exported_document, wait_ready
from tests.e2e.test_operator import ms
from tests.test_docs import fixed_example_traffic, readme_block

pytestmark = pytest.mark.node

NAMESPACE = "chargeback"  # the samples' namespace, granted all usage by docs/examples/usagescope
SYSTEM = "chargeback-system"  # the operator's, as the install docs write it
RELEASE = "chargeback"
INSTALL_DOC = "docs/install-openshift.md"
POD_SECURITY = {"pod-security.kubernetes.io/enforce": "restricted"}


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Simulation, str]]:
    """The pilot week's traffic in a Prometheus listening on the host's address."""
    workdir = tmp_path_factory.mktemp("node-traffic")
    sim, openmetrics = fixed_example_traffic(workdir)
    with PrometheusServer(workdir / "prometheus", openmetrics=openmetrics, host=HOST_IP) as prom:
        yield sim, prom.url


def documented_install(release: Release) -> list[str]:
    """The docs' `make release` and `helm install oci://` lines, for this registry (route b)."""
    block = readme_block("REGISTRY=", INSTALL_DOC).replace("\\\n", " ")
    lines = [line.split("#")[0].strip() for line in block.splitlines()]
    assert "make release REGISTRY=$REGISTRY" in lines
    (install,) = [line for line in lines if line.startswith("helm install")]
    args = shlex.split(install.replace("$REGISTRY", release.name))
    assert args[args.index("--version") + 1] == VERSION_TAG, "the docs name another version"
    assert args[args.index("-n") + 1] == SYSTEM
    return args[1:]  # without "helm"


def tool(node: Node, name: str, *args: str, check: bool = True) -> str:
    """kubectl or helm as a user runs them, from the repository root."""
    assert node.access is not None
    done = subprocess.run([str(binary(name)), "--kubeconfig", str(node.access.kubeconfig), *args],
                          cwd=ROOT, capture_output=True, text=True, check=False,
                          timeout=600)  # fmt: skip
    if check:
        assert done.returncode == 0, f"{name} {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def until(probe: Any, what: str, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except client.ApiException as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}: last {last!r}")


def operator_pod(core: client.CoreV1Api, other_than: str = "") -> client.V1Pod:
    """The operator's Ready pod (a new one when ``other_than`` names the old)."""

    def ready() -> client.V1Pod | None:
        for pod in core.list_namespaced_pod(SYSTEM).items:
            conditions = {c.type: c.status for c in pod.status.conditions or []}
            deleting = pod.metadata.deletion_timestamp is not None
            if (
                pod.metadata.name != other_than
                and not deleting
                and conditions.get("Ready") == "True"
            ):
                return pod
        return None

    found: client.V1Pod = until(ready, "the operator pod to be Ready", timeout=240)
    return found


def report_ready(node: Node, api: client.ApiClient, name: str) -> Any:
    """The report once Ready with its exports; on time-out, its status and the operator's log."""
    try:
        return wait_ready(api, NAMESPACE, name, timeout=240)
    except pytest.fail.Exception:
        status = tool(node, "kubectl", "get", "usagereport", name, "-n", NAMESPACE, "-o",
                      "jsonpath={.status}", check=False)  # fmt: skip
        logs = tool(node, "kubectl", "logs", "-n", SYSTEM, f"deploy/{RELEASE}", "--tail=60",
                    check=False)  # fmt: skip
        pytest.fail(f"{name} not Ready: {status}\noperator log:\n{logs}")


def ledger_sums(node: Node) -> tuple[int, int]:
    """Usage rows and tokens in the ledger on the node's PersistentVolume."""
    path = node.workdir / "volumes" / "pv-0" / "ledger.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows, tokens = db.execute("SELECT count(*), coalesce(sum(tokens), 0) FROM usage").fetchone()
    return int(rows), int(tokens)


def scrape_token(core: client.CoreV1Api) -> str:
    """The token of monitoring/prometheus, the ServiceAccount the chart lets read /metrics."""
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    made = core.create_namespaced_service_account_token("prometheus", "monitoring", request)
    return str(made.status.token)


@pytest.mark.timeout(900)
def test_release_installs_from_the_registry_on_a_node_to_exact_totals(
    node: Node, release: Release, traffic: tuple[Simulation, str], tmp_path: Path
) -> None:
    sim, prometheus_url = traffic
    assert node.access is not None
    api = client_from_kubeconfig(node.access.kubeconfig)
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": SYSTEM, "labels": POD_SECURITY}})
    core.create_namespace({"metadata": {"name": "monitoring"}})
    core.create_namespaced_service_account("monitoring", {"metadata": {"name": "prometheus"}})
    # The registry holds what `make release` said it pushed, at the one version.
    assert release.registry.tags(f"{REPOSITORY}/chargeback-operator") == [VERSION_TAG]
    assert release.registry.tags(f"{REPOSITORY}/chargeback-operator-bundle") == [f"v{VERSION_TAG}"]
    assert release.registry.tags(f"{REPOSITORY}/charts/chargeback-operator") == [VERSION_TAG]
    assert release.image not in node.images_present()  # so the kubelet has to pull it
    # This machine's Prometheus, volume and scraper: the values a user sets for their cluster.
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "prometheus": {"url": prometheus_url, "tokenFile": "", "caFile": ""},
        "openshift": {"monitoringView": False},
        "http": {"tls": {"openshiftServingCert": False},
                 "metricsReaders": [{"namespace": "monitoring", "name": "prometheus"}]},
        "ledger": {"persistence": {"storageClass": STORAGE_CLASS}},
        "fsGroup": 1001,
        "refreshSeconds": 10,
    }))  # fmt: skip

    began = time.monotonic()
    install = documented_install(release)
    assert install[:2] == ["install", RELEASE]
    tool(node, "helm", *install, "--plain-http", "-f", str(values), "--wait", "--timeout", "5m")
    pod = operator_pod(core)
    node.timings["pod Ready after helm install oci://"] = time.monotonic() - began
    # The image the released chart names, pulled from the registry by the node's runtime.
    assert pod.spec.containers[0].image == release.image
    assert release.image in node.images_present()
    events = f"involvedObject.name={pod.metadata.name},reason=Pulled"
    pulled = core.list_namespaced_event(SYSTEM, field_selector=events).items
    assert any(release.image in (e.message or "") for e in pulled), [e.message for e in pulled]

    # The pod as the chart asks for it: non-root, read-only root, the projected token.
    uid = tool(node, "kubectl", "exec", "-n", SYSTEM, pod.metadata.name, "--", "id", "-u")
    assert int(uid.strip()) != 0
    write = tool(node, "kubectl", "exec", "-n", SYSTEM, pod.metadata.name, "--", "sh", "-c",
                 "touch /probe", check=False)  # fmt: skip
    assert "Read-only file system" in write
    projected = [v for v in pod.spec.volumes if v.projected is not None]
    assert any(s.service_account_token for v in projected for s in v.projected.sources)
    mounts = {m.mount_path for m in pod.spec.containers[0].volume_mounts}
    assert "/var/run/secrets/kubernetes.io/serviceaccount" in mounts
    assert pod.status.container_statuses[0].restart_count == 0

    # The samples, applied as a user does: prices, who sees which usage, a report.
    tool(node, "kubectl", "apply", "-f", "docs/examples/tierpricing.yaml", "-f",
         "docs/examples/usagescope.yaml")  # fmt: skip
    tool(node, "kubectl", "create", "namespace", NAMESPACE)
    tool(node, "kubectl", "apply", "-f", "docs/examples/usagereport-fixed.yaml")
    example = yaml.safe_load((ROOT / "docs/examples/usagereport-fixed.yaml").read_text())
    pricing = yaml.safe_load((ROOT / "docs/examples/tierpricing.yaml").read_text())
    period = (ms(example["spec"]["period"]["start"]), ms(example["spec"]["period"]["end"]))
    tokens, cost = expected(sim, pricing, *period)
    name = example["metadata"]["name"]
    report = report_ready(node, api, name)
    assert report["status"]["totals"]["tokens"] == tokens > 0
    assert Decimal(report["status"]["totals"]["cost"]) == Decimal(cost)
    document = exported_document(api, NAMESPACE, report)
    assert document["totals"]["tokens"] == tokens
    dashboards = core.list_namespaced_config_map(SYSTEM, label_selector="grafana_dashboard=1")
    assert dashboards.items, "no dashboard ConfigMap"

    # /metrics through the operator's Service, scraped as a ServiceMonitor would.
    service = core.read_namespaced_service(RELEASE, SYSTEM)
    scraper = PrometheusServer(tmp_path / "scraper",
                               scrape_targets=[f"{service.spec.cluster_ip}:8080"],
                               scrape_token=scrape_token(core))  # fmt: skip
    with scraper:
        up = until(lambda: scraper.query('up{job="live"} == 1'), "the Service scraped", 60)
        assert up
        watermarks = until(lambda: scraper.query("chargeback_collector_watermark_seconds"),
                           "the operator's metrics scraped", 60)  # fmt: skip
        assert watermarks

    # A deleted pod: its successor continues from the ledger on the volume, counting nothing
    # twice.
    before = ledger_sums(node)
    assert before[1] > 0
    tool(node, "kubectl", "delete", "pod", "-n", SYSTEM, pod.metadata.name)
    successor = operator_pod(core, other_than=pod.metadata.name)
    report = report_ready(node, api, name)
    assert report["status"]["totals"]["tokens"] == tokens
    time.sleep(15)  # a refresh of the new pod (10 s) has run
    assert ledger_sums(node) == before

    # An upgrade with a changed value rolls the pod and keeps the data.
    chart = install[2]
    tool(node, "helm", "upgrade", RELEASE, chart, "--version", VERSION_TAG, "--plain-http",
         "-n", SYSTEM, "--reuse-values", "--set", "refreshSeconds=12", "--wait",
         "--timeout", "5m")  # fmt: skip
    rolled = operator_pod(core, other_than=successor.metadata.name)
    env = {e.name: e.value for e in rolled.spec.containers[0].env}
    assert env["CHARGEBACK_REFRESH_SECONDS"] == "12"
    report = report_ready(node, api, name)
    assert report["status"]["totals"]["tokens"] == tokens
    assert ledger_sums(node) == before

    # Uninstall removes the release; the CRDs and the ledger's claim stay (chart policy).
    tool(node, "helm", "uninstall", RELEASE, "-n", SYSTEM, "--wait", "--timeout", "3m")
    apps = client.AppsV1Api(api)
    assert apps.list_namespaced_deployment(SYSTEM).items == []
    assert core.list_namespaced_service(SYSTEM).items == []
    until(lambda: not core.list_namespaced_pod(SYSTEM).items, "the pods gone", 90)
    claims = core.list_namespaced_persistent_volume_claim(SYSTEM).items
    assert [c.metadata.name for c in claims] == [f"{RELEASE}-ledger"]
    crds = client.ApiextensionsV1Api(api).list_custom_resource_definition().items
    assert {"usagereports.chargeback.dev", "tierpricings.chargeback.dev"} <= {
        c.metadata.name for c in crds
    }
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    (ROOT / "test-artifacts" / "node-timings.json").write_text(json.dumps(node.timings, indent=1))
