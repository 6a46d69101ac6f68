"""Shared fixtures: one real control plane, PostgreSQL server per session; isolation per test.

Expensive components start once per session. Each test gets its own namespace (deleted after it),
its own PostgreSQL database, and, where it needs specific history, its own Prometheus.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from chargeback.testing.kube import ClusterAccess, ControlPlane, install_crds
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


@pytest.fixture(scope="session")
def chargeback_crds(api_client: client.ApiClient) -> None:
    """The chargeback CRDs, installed from crds/ into the session's API server."""
    install_crds(api_client, ROOT / "crds")
