"""What users install, run as they run it: the wheel without extras; `make demo` in a clone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from kubernetes import client

from chargeback.testing.kube import ClusterAccess
from chargeback.testing.process import free_port
from tests.conftest import CleanInstall
from tests.e2e.conftest import (
    GROUP,
    VERSION,
    Live,
    exported_document,
    local_zone_near_midday,
    wait_ready,
)
from tests.e2e.test_operator import create_pricing, live_totals, report_body

DEV_ONLY = {"cryptography", "matplotlib", "pytest", "hypothesis", "mypy", "ruff", "build"}


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload, no-any-return]


def test_wheel_without_extras_serves_the_cli(clean_install: CleanInstall) -> None:
    chargeback = str(clean_install.bin / "chargeback")
    for args in (["--help"], ["report", "--help"], ["run", "--help"]):
        result = run([chargeback, *args])
        assert result.returncode == 0, result.stderr
        assert "Usage: chargeback" in result.stdout
    installed = run([str(clean_install.bin / "pip"), "list", "--format", "json"])
    names = {p["name"].lower() for p in json.loads(installed.stdout)}
    assert "chargeback-operator" in names
    assert names.isdisjoint(DEV_ONLY)
    # The demo names the extra it needs instead of a traceback.
    demo = run([chargeback, "demo", "--no-wait"])
    assert demo.returncode == 1
    assert "pip install 'chargeback-operator[demo]'" in demo.stderr
    assert "Traceback" not in demo.stderr
    with tarfile.open(clean_install.sdist) as sdist:
        members = {m.split("/", 1)[-1] for m in sdist.getnames()}  # without the top folder
    assert {"operator/chargeback/cli/__init__.py", "operator/chargeback/py.typed",
            "pyproject.toml", "README.md"} <= members  # fmt: skip


def test_wheel_runs_the_operator_to_ground_truth(
    clean_install: CleanInstall,
    live: Live,
    cluster: ClusterAccess,
    chargeback_crds: None,
    api_client: client.ApiClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    """`chargeback run` from the clean virtualenv reconciles a report to the priced truth."""
    log = (tmp_path / "operator.log").open("w")
    operator = subprocess.Popen(
        [str(clean_install.bin / "chargeback"), "run", "--prometheus-url", live.prometheus.url,
         "--token-file", "", "--ca-file", "", "--ledger", f"sqlite:///{tmp_path}/ledger.db",
         "--namespace", namespace, "--refresh-seconds", "3", "--metrics-port", str(free_port()),
         "--liveness-port", str(free_port())],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        pricing = create_pricing(api_client, live, "wheel")
        zone = local_zone_near_midday()
        body = report_body("daily", pricing, schedule={"interval": "daily", "timeZone": zone})
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            GROUP, VERSION, namespace, "usagereports", body
        )
        report = wait_ready(api_client, namespace, "daily")
        document = exported_document(api_client, namespace, report)
        assert report["status"]["totals"] == live_totals(live, document)
    finally:
        operator.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = operator.wait(timeout=60)
        log.close()
    assert code == 0, (tmp_path / "operator.log").read_text()[-3000:]
    assert time.monotonic() - started < 30


@pytest.mark.slow
@pytest.mark.timeout(1200)  # creates the clone's own virtualenv, as a reader's first run does
def test_make_demo_from_a_fresh_clone(fresh_clone: Path) -> None:
    """The README's first command, typed at the root of a fresh clone, without a terminal."""
    demo = subprocess.run(  # noqa: S602 (the README's command, as typed)
        "make demo < /dev/null", shell=True, cwd=fresh_clone, capture_output=True, text=True,
        timeout=1200, check=False, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output[-4000:]
    assert "The report equals the simulator's ground truth" in demo.stdout
    assert "usagereport.chargeback.dev/monthly" in demo.stdout
    # Teams are real (OpenShift Groups), not all unassigned.
    assert "team-research" in demo.stdout
    assert "team-finance" in demo.stdout
    exports = fresh_clone / "demo-output"
    assert list(exports.glob("monthly-*.csv"))
    assert list(exports.glob("runs/*/ledger.db"))
    assert "Press Ctrl-C" not in demo.stdout
