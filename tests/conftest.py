"""Shared fixtures: one real control plane, PostgreSQL server per session; isolation per test.

Expensive components start once per session. Each test gets its own namespace (deleted after it),
its own PostgreSQL database, and, where it needs specific history, its own Prometheus.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from chargeback.api.common import GROUP, VERSION
from chargeback.testing.kube import ClusterAccess, ControlPlane, install_crds
from chargeback.testing.postgres import PostgresServer
from chargeback.testing.prometheus import PrometheusServer
from chargeback.testing.registry import RegistryServer
from chargeback.testing.simulator import HOUR_MS, Scenario, Simulation, simulate

ROOT = Path(__file__).resolve().parents[1]
VERSION_TAG = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
REPOSITORY = "chargeback"
"""The path under the registry's host, as in ``make release REGISTRY=host:port/chargeback``."""


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


TEST_TENANCY = {"chargeback.dev/test-tenancy": "unrestricted"}
"""The label of test namespaces: a UsageScope lets their reports see all usage."""


@pytest.fixture
def namespace(api_client: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test, deleted (with its contents) afterwards.

    Its reports see all usage (the `chargeback_crds` fixture grants it, as an administrator
    grants the platform team's namespace); tenancy tests make namespaces of their own.
    """
    name = f"{_dns_label(request.node.name)}-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api_client)
    metadata = client.V1ObjectMeta(name=name, labels=TEST_TENANCY)
    core.create_namespace(client.V1Namespace(metadata=metadata))
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
    """The chargeback CRDs, installed from crds/ into the session's API server, and the scope
    that lets the reports of test namespaces see all usage."""
    install_crds(api_client, ROOT / "crds")
    spec = {"namespaceSelector": {"matchLabels": TEST_TENANCY}, "unrestricted": True}
    scope = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "UsageScope",
             "metadata": {"name": "test-namespaces"}, "spec": spec}  # fmt: skip
    try:
        client.CustomObjectsApi(api_client).create_cluster_custom_object(
            GROUP, VERSION, "usagescopes", scope
        )
    except ApiException as exc:
        if exc.status != 409:
            raise


@dataclass(frozen=True)
class CleanInstall:
    """The wheel and sdist as built for release, and a fresh virtualenv holding the wheel alone."""

    wheel: Path
    sdist: Path
    bin: Path


@pytest.fixture(scope="session")
def clean_install(tmp_path_factory: pytest.TempPathFactory) -> CleanInstall:
    """``python -m build`` (sdist, then the wheel from the sdist), then ``pip install`` of the
    wheel with no extras into a new virtualenv: what a user installs, not the dev environment."""
    work = tmp_path_factory.mktemp("clean-install")
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(work / "dist"), str(ROOT)],
                   check=True, capture_output=True, text=True)  # fmt: skip
    (wheel,) = (work / "dist").glob("*.whl")
    (sdist,) = (work / "dist").glob("*.tar.gz")
    venv = work / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                    str(wheel)], check=True)  # fmt: skip
    return CleanInstall(wheel, sdist, venv / "bin")


@pytest.fixture(scope="session")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``git clone`` of this repository holding the working tree as it would be committed
    (staged and unstaged changes and new files applied): the root a reader starts from."""
    dest = tmp_path_factory.mktemp("clone") / "chargeback-operator"
    git = ["git", "-c", "advice.detachedHead=false"]
    subprocess.run([*git, "clone", "--quiet", str(ROOT), str(dest)], check=True)
    diff = subprocess.run([*git, "-C", str(ROOT), "diff", "HEAD", "--binary"], check=True,
                          capture_output=True).stdout  # fmt: skip
    if diff:
        subprocess.run([*git, "-C", str(dest), "apply", "--binary", "-"], input=diff, check=True)
    untracked = subprocess.run(
        [*git, "-C", str(ROOT), "ls-files", "--others", "--exclude-standard", "-z"],
        check=True, capture_output=True, text=True,
    ).stdout.split("\0")  # fmt: skip
    for name in filter(None, untracked):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    return dest


@dataclass
class Live:
    """Simulated traffic up to now, in a running Prometheus."""

    sim: Simulation
    prometheus: PrometheusServer
    start_ms: int


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    now = int(time.time() * 1000)
    start = (now - 50 * HOUR_MS) // HOUR_MS * HOUR_MS
    scenario = Scenario(
        start_ms=start, hours=50, users=40, replicas=2, scrape_interval_ms=300_000, seed=21,
        restarts=((1, start + 20 * HOUR_MS + 60_000),),
    )  # fmt: skip
    sim = simulate(scenario)
    workdir = tmp_path_factory.mktemp("live")
    server = PrometheusServer(workdir / "prom", openmetrics=sim.write_openmetrics(workdir / "l.om"))
    with server:
        yield Live(sim, server, start)


@dataclass(frozen=True)
class Release:
    """What `make release` pushed to a registry on loopback, and what it printed."""

    registry: RegistryServer
    output: str

    @property
    def name(self) -> str:
        """REGISTRY, as given to `make release`."""
        return f"{self.registry.host}/{REPOSITORY}"

    @property
    def image(self) -> str:
        """The operator image."""
        return f"{self.name}/chargeback-operator:{VERSION_TAG}"

    @property
    def chart(self) -> str:
        """The chart's OCI reference (without the version)."""
        return f"oci://{self.name}/charts/chargeback-operator"


def forget_release_images(registry: str) -> None:
    """Remove the local tags `make release` left for a registry of the tests (disk)."""
    tags = [f"{registry}/chargeback-operator:{VERSION_TAG}",
            f"{registry}/chargeback-operator-bundle:v{VERSION_TAG}"]  # fmt: skip
    subprocess.run(["podman", "rmi", "-f", "-i", *tags], capture_output=True, check=False)


def make_release(
    registry: str | None, *extra: str, root: Path = ROOT, **env: str
) -> subprocess.CompletedProcess[str]:
    """`make release REGISTRY=... INSECURE=1` from a repository root, as a user types it."""
    words = ["make", "release", *([f"REGISTRY={registry}"] if registry is not None else []), *extra]
    return subprocess.run(words, cwd=root, capture_output=True, text=True, check=False,
                          timeout=1800, env={**os.environ, **env})  # fmt: skip


@pytest.fixture(scope="session")
def release(tmp_path_factory: pytest.TempPathFactory, fresh_clone: Path) -> Iterator[Release]:
    """A real registry (Debian's docker-registry, plain HTTP) holding this version's release,
    made by `make release` in a fresh clone, where a user runs it."""
    with RegistryServer(workdir=tmp_path_factory.mktemp("registry")) as registry:
        name = f"{registry.host}/{REPOSITORY}"
        try:
            done = make_release(name, "INSECURE=1", root=fresh_clone)
            assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
            yield Release(registry, done.stdout + done.stderr)
        finally:
            forget_release_images(name)
