"""Shared fixtures: one real control plane, PostgreSQL server per session; isolation per test.

Expensive components start once per session. Each test gets its own namespace (deleted after it),
its own PostgreSQL database, and, where it needs specific history, its own Prometheus.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from chargeback.testing.kube import ClusterAccess, ControlPlane
from chargeback.testing.postgres import PostgresServer
from chargeback.testing.prometheus import PrometheusServer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager for the whole session."""
    plane = ControlPlane()
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def cluster(control_plane: ControlPlane) -> ClusterAccess:
    """How to reach the session's API server."""
    assert control_plane.access is not None
    return control_plane.access


@pytest.fixture(scope="session")
def api_client(cluster: ClusterAccess) -> Iterator[client.ApiClient]:
    """An admin ApiClient for the session's control plane."""
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield api
    api.close()


def _dns_label(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:40].strip("-")


@pytest.fixture
def namespace(api_client: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test, deleted (with its contents) afterwards."""
    name = f"{_dns_label(request.node.name)}-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_dsn(postgres_server: PostgresServer) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[..., PrometheusServer]]:
    """Start Prometheus servers over given OpenMetrics history; all are stopped after the test."""
    started: list[PrometheusServer] = []

    def start(openmetrics: str | Path, **kwargs: str) -> PrometheusServer:
        server = PrometheusServer(
            tmp_path / f"prom{len(started)}", openmetrics=openmetrics, **kwargs
        )
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.close()


def install_crds(api_client: client.ApiClient) -> None:
    """Apply every CRD in crds/ (create or replace) and wait until each is Established."""
    ext = client.ApiextensionsV1Api(api_client)
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        name = body["metadata"]["name"]
        try:
            current = ext.read_custom_resource_definition(name)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            ext.replace_custom_resource_definition(name, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            ext.create_custom_resource_definition(body)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            crd = ext.read_custom_resource_definition(name)
            if any(c.type == "Established" and c.status == "True"
                   for c in crd.status.conditions or []):  # fmt: skip
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"CRD {name} not Established")


@pytest.fixture(scope="session")
def chargeback_crds(api_client: client.ApiClient) -> None:
    install_crds(api_client)
