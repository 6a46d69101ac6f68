"""The operator image, built by `make image` and run by real podman as OpenShift runs it.

restricted-v2 runs containers with an arbitrary UID in group 0, a read-only root, no capabilities
and no privilege escalation; the chart's Deployment configures the operator only through
environment variables, the ServiceAccount mount and the ledger volume. The tests do the same.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import tomllib
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from packaging.version import Version

from chargeback.adapters.ledger import Ledger
from chargeback.testing.kube import ClusterAccess
from chargeback.testing.process import free_port
from tests.conftest import ROOT, VERSION_TAG, CleanInstall
from tests.e2e.conftest import (
    GROUP,
    VERSION,
    Live,
    exported_document,
    http_get,
    local_zone_near_midday,
    wait_for,
    wait_ready,
)
from tests.e2e.test_operator import create_pricing, live_totals, report_body

IMAGE = f"localhost/chargeback-operator-test:{VERSION_TAG}"
RESTRICTED = ["--user", "1000680000:0", "--read-only", "--cap-drop=ALL",
              "--security-opt", "no-new-privileges"]  # fmt: skip
GRACE_SECONDS = 30  # the chart sets no terminationGracePeriodSeconds: Kubernetes' default
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def podman(
    *args: str, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check,
                          timeout=timeout)  # fmt: skip


@pytest.fixture(scope="session")
def image() -> str:
    """The image as `make image` builds it (podman's layer cache makes a rebuild cheap)."""
    built = subprocess.run(["make", "image", f"IMAGE={IMAGE}"], cwd=ROOT, capture_output=True,
                           text=True, check=False, timeout=1500)  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return IMAGE


def in_image(image: str, script: str) -> str:
    return podman("run", "--rm", *RESTRICTED, "--entrypoint", "sh", image, "-c", script).stdout


@pytest.mark.timeout(900)  # the first test builds the image when `make image` has not run
def test_image_runs_restricted(image: str) -> None:
    result = podman("run", "--rm", *RESTRICTED, image, "--help")
    assert "Usage: chargeback" in result.stdout
    assert "run " in result.stdout


def test_image_holds_the_runtime_and_nothing_else(image: str, clean_install: CleanInstall) -> None:
    # No compiler, no test suites of dependencies.
    assert in_image(image, "command -v gcc cc c++ clang ld strip || true").strip() == ""
    # The build's CA bundle was a build secret, not a file of the image.
    assert in_image(image, "ls /run/secrets/build-ca 2>/dev/null || true").strip() == ""
    site = "/opt/chargeback/lib/python3*/site-packages"
    assert in_image(image, f"find {site} -type d -name tests").strip() == ""
    # Exactly the distributions of a clean `pip install` of the wheel, less the installers.
    listing = "import importlib.metadata as m, json; print(json.dumps(sorted(f\"{d.metadata['Name'].lower()}=={d.version}\" for d in m.distributions())))"  # noqa: E501
    inside = set(json.loads(podman("run", "--rm", *RESTRICTED, "--entrypoint", "python", image,
                                   "-c", listing).stdout))  # fmt: skip
    wheel = subprocess.run([str(clean_install.bin / "python"), "-c", listing], capture_output=True,
                           text=True, check=True).stdout  # fmt: skip
    expected = {d for d in json.loads(wheel) if d.split("==")[0] not in {"pip", "setuptools"}}
    assert inside == expected
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    versions = {re.sub(r"[-_.]+", "-", d.split("==")[0]): d.split("==")[1] for d in inside}
    for pin in pins:
        name, version = pin.split("==")
        found = versions.get(re.sub(r"[-_.]+", "-", name.split("[")[0].lower()))
        assert found is not None, pin
        assert Version(found) == Version(version), pin


@pytest.fixture
def ledger_volume(tmp_path: Path) -> Path:
    """A volume like the chart's PVC: owned by root, writable by group 0 (OpenShift's UIDs)."""
    volume = tmp_path / "ledger-volume"
    volume.mkdir()
    os.chown(volume, 0, 0)
    volume.chmod(0o770)
    return volume


@pytest.fixture
def service_account(tmp_path: Path, cluster: ClusterAccess, namespace: str) -> Path:
    """The files Kubernetes mounts at /var/run/secrets/kubernetes.io/serviceaccount."""
    folder = tmp_path / "serviceaccount"
    folder.mkdir()
    (folder / "token").write_text(cluster.admin_token)
    (folder / "ca.crt").write_bytes(cluster.ca_file.read_bytes())
    (folder / "namespace").write_text(namespace)  # the operator's own namespace
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


@pytest.fixture
def container(
    image: str, live: Live, cluster: ClusterAccess, namespace: str, ledger_volume: Path,
    service_account: Path,
) -> Iterator[list[str]]:  # fmt: skip
    """`podman run` arguments of the operator as the chart's Deployment starts it."""
    api = urllib.parse.urlsplit(cluster.server)
    env = {
        "KUBERNETES_SERVICE_HOST": api.hostname, "KUBERNETES_SERVICE_PORT": str(api.port),
        "CHARGEBACK_PROMETHEUS_URL": live.prometheus.url,
        "CHARGEBACK_PROMETHEUS_TOKEN_FILE": f"{SA_DIR}/token",
        "CHARGEBACK_PROMETHEUS_CA_FILE": f"{SA_DIR}/service-ca.crt",
        "CHARGEBACK_LEDGER": "sqlite:////var/lib/chargeback/ledger.db",
        "CHARGEBACK_REFRESH_SECONDS": "3", "CHARGEBACK_BUCKET": "1h",
        "CHARGEBACK_GPU_COSTS": "false", "CHARGEBACK_NAMESPACES": namespace,
        "CHARGEBACK_METRICS_PORT": str(free_port()), "POD_NAMESPACE": namespace,
    }  # fmt: skip
    name = f"chargeback-{namespace}"
    args = ["run", "-d", "--name", name, "--network", "host", *RESTRICTED,
            "-v", f"{service_account}:{SA_DIR}:ro", "-v", f"{ledger_volume}:/var/lib/chargeback",
            "--tmpfs", "/tmp", *[f"--env={k}={v}" for k, v in env.items()],
            image, "run"]  # fmt: skip
    yield args
    logs = podman("logs", name, check=False)
    podman("rm", "-f", name, check=False)
    print((logs.stdout + logs.stderr)[-5000:])  # shown by pytest when the test failed


def _reconciled(port: str, namespace: str, token: str) -> bool:
    try:
        code, text = http_get(f"http://127.0.0.1:{port}/metrics", token)
    except OSError:
        return False
    if code != 200:
        return False
    return any(line.startswith("chargeback_report_tokens{") and f'namespace="{namespace}"' in line
               for line in text.splitlines())  # fmt: skip


def _stop(name: str) -> tuple[float, int]:
    started = time.monotonic()
    podman("stop", "-t", str(GRACE_SECONDS), name, timeout=GRACE_SECONDS + 30)
    elapsed = time.monotonic() - started
    code = int(podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip())
    return elapsed, code


@pytest.mark.slow
def test_image_runs_the_operator_as_the_chart_does(
    container: list[str], live: Live, api_client: client.ApiClient, namespace: str,
    chargeback_crds: None, ledger_volume: Path, cluster: ClusterAccess,
) -> None:  # fmt: skip
    name = container[container.index("--name") + 1]
    podman(*container)
    pricing = create_pricing(api_client, live, "image")
    schedule = {"interval": "daily", "timeZone": local_zone_near_midday()}
    body = report_body("daily", pricing, schedule=schedule)
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "usagereports", body
    )
    report = wait_ready(api_client, namespace, "daily", timeout=180)
    assert report["status"]["totals"] == live_totals(
        live, exported_document(api_client, namespace, report)
    )

    # SIGTERM stops it well within the grace period, with a clean exit (not SIGKILL's 137).
    elapsed, code = _stop(name)
    assert code == 0, podman("logs", name).stdout[-3000:]
    assert elapsed < GRACE_SECONDS
    dsn = f"sqlite:///{ledger_volume}/ledger.db"
    ledger = Ledger(dsn)
    try:
        (source,) = [record.id for record in ledger.list_sources()]
        before = sum(row.tokens for row in ledger.usage(source))
    finally:
        ledger.close()

    # A restarted container continues from the same ledger: nothing is counted twice. A new
    # process exports the report's metrics only once it has reconciled the report.
    podman("start", name)
    port = next(a for a in container if a.startswith("--env=CHARGEBACK_METRICS_PORT=")).split("=")[
        -1
    ]
    wait_for(lambda: _reconciled(port, namespace, cluster.admin_token), timeout=120,
             what="reconcile after restart")  # fmt: skip
    report = wait_ready(api_client, namespace, "daily", timeout=180)
    assert report["status"]["totals"] == live_totals(
        live, exported_document(api_client, namespace, report)
    )
    _stop(name)
    ledger = Ledger(dsn)
    try:
        after = sum(row.tokens for row in ledger.usage(source))
        collected = {}
        for row in ledger.usage(source):
            key = (row.user, row.tier, row.model, row.bucket_start_ms)
            collected[key] = collected.get(key, 0) + row.tokens
    finally:
        ledger.close()
    assert after >= before
    first = min(key[3] for key in collected)
    last = max(key[3] for key in collected)
    truth = live.sim.truth(first, last + 3_600_000)
    assert {k: v for k, v in collected.items() if v} == {k: v for k, v in truth.items() if v}
