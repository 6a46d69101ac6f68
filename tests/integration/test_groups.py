"""Team attribution from OpenShift Groups read from the real API server (Group CRD installed)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chargeback.adapters.kube import openshift_groups
from chargeback.testing.kube import GROUP_CRD, ClusterAccess, create_group
from tests.integration.conftest import Traffic
from tests.integration.test_report import END, START, pricing_doc, report_doc


@pytest.fixture
def group_api(api_client: client.ApiClient) -> Iterator[None]:
    ext = client.ApiextensionsV1Api(api_client)
    ext.create_custom_resource_definition(GROUP_CRD)
    deadline = time.monotonic() + 30
    while openshift_groups(api_client) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    yield
    ext.delete_custom_resource_definition(GROUP_CRD["metadata"]["name"])
    while time.monotonic() < deadline + 30:
        try:
            ext.read_custom_resource_definition(GROUP_CRD["metadata"]["name"])
        except ApiException:
            break
        time.sleep(0.2)


def test_groups_absent_then_present(
    api_client: client.ApiClient, request: pytest.FixtureRequest
) -> None:
    assert openshift_groups(api_client) is None
    request.getfixturevalue("group_api")
    create_group(api_client, "team-ml", ["erin@example.com"])
    create_group(api_client, "admins", ["frank@example.com"])
    assert openshift_groups(api_client) == {
        "team-ml": ["erin@example.com"], "admins": ["frank@example.com"],
    }  # fmt: skip


@pytest.mark.usefixtures("group_api")
def test_report_attributes_teams_from_groups(
    api_client: client.ApiClient, cluster: ClusterAccess, traffic: Traffic, tmp_path: Path
) -> None:
    users = sorted({k[0] for k in traffic.sim.truth(START, END)})
    create_group(api_client, "team-search", users[:3])
    create_group(api_client, "ops", users[3:5])  # no prefix: not a team
    report = report_doc([users[0]])
    report["spec"]["attribution"].update({"openshiftGroups": True, "groupPrefix": "team-"})
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(report))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(pricing_doc({"free": "1"}, None)))
    result = subprocess.run(
        [sys.executable, "-m", "chargeback", "report", "--prometheus-url", traffic.prometheus.url,
         "--pricing", str(tmp_path / "p.yaml"), "--report", str(tmp_path / "r.yaml"),
         "--kubeconfig", str(cluster.kubeconfig), "--format", "json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    teams = {line["user"]: line["team"] for line in json.loads(result.stdout)["lines"]}
    assert teams[users[0]] == "core"  # static membership wins over groups
    assert teams[users[1]] == teams[users[2]] == "team-search"
    assert teams[users[3]] == teams[users[4]] == "unassigned"
