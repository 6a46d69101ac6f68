"""helm installs a chart into the real API server and uninstalls it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chargeback.testing.kube import ClusterAccess
from chargeback.testing.tools import binary

CHART = """apiVersion: v2
name: tiny
version: 0.1.0
kubeVersion: ">=1.36.0-0"
"""
TEMPLATE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  greeting: {{ .Values.greeting | quote }}
"""


def helm(cluster: ClusterAccess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary("helm")), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_helm_install_and_uninstall(
    cluster: ClusterAccess, api_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    chart = tmp_path / "tiny"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(CHART)
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "configmap.yaml").write_text(TEMPLATE)

    installed = helm(cluster, "install", "demo", str(chart), "-n", namespace,
                     "--set", "greeting=hi", "--wait")  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    core = client.CoreV1Api(api_client)
    assert core.read_namespaced_config_map("demo-settings", namespace).data == {"greeting": "hi"}

    removed = helm(cluster, "uninstall", "demo", "-n", namespace, "--wait")
    assert removed.returncode == 0, removed.stderr
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("demo-settings", namespace)
    assert err.value.status == 404
