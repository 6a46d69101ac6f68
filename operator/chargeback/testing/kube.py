"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

The API server serves TLS with a throwaway CA, authenticates an admin by static token, authorises
with RBAC, signs ServiceAccount tokens (so TokenRequest works) and runs Pod Security admission.
The controller-manager (optional) runs the garbage collector and namespace controllers, so
ownerReferences and namespace deletion behave as in a cluster.
"""

from __future__ import annotations

import copy
import ipaddress
import secrets
import shutil
import ssl
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chargeback.testing import pki
from chargeback.testing.process import ComponentError, ManagedProcess, free_port
from chargeback.testing.tools import binary

ADMIN_USER = "chargeback-admin"
SERVICE_CIDR = "10.0.0.0/24"
START_TIMEOUT = 90.0


@dataclass(frozen=True)
class ClusterAccess:
    """How to reach the API server: URL, CA bundle, admin token and a kubeconfig file."""

    server: str
    ca_file: Path
    admin_token: str
    kubeconfig: Path


def write_kubeconfig(path: Path, server: str, ca_file: Path, token: str, user: str) -> Path:
    """Write a kubeconfig with one cluster, one token user and a current context."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": server, "certificate-authority": str(ca_file)}}
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


CONTROLLERS = ("garbage-collector-controller", "namespace-controller")
"""What the API tests need: ownerReferences and namespace deletion behave as in a cluster."""
POD_CONTROLLERS = (
    *CONTROLLERS,
    "deployment-controller",
    "replicaset-controller",
    "endpointslice-controller",
    "endpoints-controller",
    "node-lifecycle-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
    "persistentvolume-binder-controller",
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
)
"""What pods need besides a node (``chargeback.testing.node``)."""


class ControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager) in a temporary directory."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        controller_manager: bool = True,
        host: str = "127.0.0.1",
        for_pods: bool = False,
    ) -> None:
        """``host``: the address the API server listens on and advertises.

        ``for_pods``: run as a cluster with nodes needs it (ServiceAccount admission, the
        ``kubernetes`` Service's endpoints kept, the controllers of :data:`POD_CONTROLLERS`).
        """
        self._owns_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="chargeback-kube-"))
        self.with_controller_manager = controller_manager
        self.host = host
        self.for_pods = for_pods
        self.processes: list[ManagedProcess] = []
        self.access: ClusterAccess | None = None
        self.etcd: ManagedProcess | None = None
        self.apiserver: ManagedProcess | None = None
        self.controller_manager: ManagedProcess | None = None

    @property
    def _access(self) -> ClusterAccess:
        if self.access is None:
            raise ComponentError("the control plane has not been started")
        return self.access

    def start(self) -> ClusterAccess:
        """Start every component and wait until the API server is ready."""
        pki_dir = self.workdir / "pki"
        pki_dir.mkdir(parents=True, exist_ok=True)
        ca = pki.make_ca(pki_dir)
        # In-cluster clients reach the API server through the `kubernetes` Service's first IP.
        service_ip = str(next(ipaddress.ip_network(SERVICE_CIDR).hosts()))
        serving = pki.make_serving_cert(
            ca, pki_dir, "apiserver",
            ["kubernetes", "kubernetes.default", "kubernetes.default.svc", service_ip, self.host],
        )  # fmt: skip
        sa_key = pki.make_signing_key(pki_dir)
        token = secrets.token_hex(16)
        (self.workdir / "tokens.csv").write_text(
            f'{token},{ADMIN_USER},admin-uid,"system:masters"\n'
        )
        api_port = free_port()
        server = f"https://{self.host}:{api_port}"
        kubeconfig = write_kubeconfig(
            self.workdir / "kubeconfig", server, ca.cert, token, ADMIN_USER
        )
        self.access = ClusterAccess(server, ca.cert, token, kubeconfig)

        self.etcd = self._start_etcd()
        self.apiserver = self._start_apiserver(api_port, serving, sa_key)
        if self.with_controller_manager:
            self.controller_manager = self._start_controller_manager(ca, sa_key)
        return self.access

    def _start_etcd(self) -> ManagedProcess:
        client, peer = free_port(), free_port()
        self._etcd_url = f"http://127.0.0.1:{client}"
        proc = ManagedProcess(
            "etcd",
            [
                str(binary("etcd")),
                "--data-dir", str(self.workdir / "etcd"),
                "--listen-client-urls", self._etcd_url,
                "--advertise-client-urls", self._etcd_url,
                "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-cluster", f"default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--log-level", "warn",
            ],
            self.workdir / "etcd.log",
        )  # fmt: skip
        proc.start()
        self.processes.append(proc)
        proc.wait_ready(lambda: _http_ok(f"{self._etcd_url}/health"), START_TIMEOUT)
        return proc

    def _start_apiserver(
        self, port: int, serving: pki.CertPair, sa_key: pki.CertPair
    ) -> ManagedProcess:
        proc = ManagedProcess(
            "kube-apiserver",
            [
                str(binary("kube-apiserver")),
                f"--etcd-servers={self._etcd_url}",
                f"--bind-address={self.host}",
                f"--advertise-address={self.host}",
                f"--secure-port={port}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={self._access.ca_file}",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={sa_key.cert}",
                f"--service-account-signing-key-file={sa_key.key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                *(
                    [
                        "--enable-admission-plugins=PodSecurity,NamespaceLifecycle,ServiceAccount",
                        "--endpoint-reconciler-type=lease",
                        "--kubelet-preferred-address-types=InternalIP",
                    ]
                    if self.for_pods
                    else [
                        "--disable-admission-plugins=ServiceAccount",
                        "--enable-admission-plugins=PodSecurity,NamespaceLifecycle",
                        "--endpoint-reconciler-type=none",
                    ]
                ),
                "--allow-privileged=true",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                "--v=1",
            ],
            self.workdir / "kube-apiserver.log",
        )
        proc.start()
        self.processes.append(proc)
        proc.wait_ready(self._apiserver_ready, START_TIMEOUT)
        return proc

    def _apiserver_ready(self) -> bool:
        # /readyz waits for the RBAC bootstrap roles, so clients never see a half-started server.
        return _http_ok(
            f"{self._access.server}/readyz",
            ca_file=self._access.ca_file,
            token=self._access.admin_token,
        )

    def _start_controller_manager(self, ca: pki.CertPair, sa_key: pki.CertPair) -> ManagedProcess:
        port = free_port()
        proc = ManagedProcess(
            "kube-controller-manager",
            [
                str(binary("kube-controller-manager")),
                f"--kubeconfig={self._access.kubeconfig}",
                f"--controllers={','.join(POD_CONTROLLERS if self.for_pods else CONTROLLERS)}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'kcm-certs'}",
                f"--root-ca-file={ca.cert}",
                f"--service-account-private-key-file={sa_key.key}",
                "--v=1",
            ],
            self.workdir / "kube-controller-manager.log",
        )
        proc.start()
        self.processes.append(proc)
        proc.wait_ready(lambda: _http_ok(f"https://127.0.0.1:{port}/healthz"), START_TIMEOUT)
        return proc

    def restart_apiserver(self) -> None:
        """Stop and start the API server on the same port and state (for recovery tests)."""
        if self.apiserver is None:
            raise ComponentError("the control plane has not been started")
        self.apiserver.stop()
        self.apiserver.start()
        self.apiserver.wait_ready(self._apiserver_ready, START_TIMEOUT)

    def stop(self) -> None:
        """Stop every component (in reverse start order) and remove the work directory."""
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()
        if self._owns_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ClusterAccess:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _http_ok(url: str, *, ca_file: Path | None = None, token: str | None = None) -> bool:
    if url.startswith("https"):
        context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else _insecure()
    else:
        context = None
    request = urllib.request.Request(url)  # noqa: S310 - loopback URLs we built
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=5, context=context) as response:  # noqa: S310
        return bool(response.status == 200)


def _insecure() -> ssl.SSLContext:
    # The controller-manager's self-signed health endpoint: reachability is all we check.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def install_crds(api: Any, directory: Path, timeout: float = 30.0) -> None:
    """Create or replace every CRD in ``directory`` and wait until each is Established."""
    bodies = [yaml.safe_load(path.read_text()) for path in sorted(directory.glob("*.yaml"))]
    apply_crds(api, bodies, timeout)


def apply_crds(api: Any, bodies: list[dict[str, Any]], timeout: float = 30.0) -> None:
    """Create or replace each CRD and wait until each is Established."""
    ext = client.ApiextensionsV1Api(api)
    names = []
    for manifest in bodies:
        name = manifest["metadata"]["name"]
        names.append(name)
        body: Any = copy.deepcopy(manifest)
        try:
            current = ext.read_custom_resource_definition(name)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version  # type: ignore[union-attr]
            ext.replace_custom_resource_definition(name, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            ext.create_custom_resource_definition(body)
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            status = ext.read_custom_resource_definition(name).status
            conditions = (status.conditions if status else None) or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                break
            if time.monotonic() > deadline:
                raise ComponentError(f"CRD {name} was not Established within {timeout:.0f}s")
            time.sleep(0.2)


# OpenShift's Group API (user.openshift.io/v1), enough of it for team attribution.
GROUP_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "groups.user.openshift.io"},
    "spec": {
        "group": "user.openshift.io",
        "scope": "Cluster",
        "names": {"plural": "groups", "singular": "group", "kind": "Group"},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "users": {"type": "array", "items": {"type": "string"}}}}},
        }],
    },
}  # fmt: skip


def create_group(api: Any, name: str, users: list[str]) -> None:
    """Create an OpenShift Group (the Group CRD must be installed)."""
    body = {"apiVersion": "user.openshift.io/v1", "kind": "Group", "metadata": {"name": name},
            "users": users}  # fmt: skip
    client.CustomObjectsApi(api).create_cluster_custom_object(
        "user.openshift.io", "v1", "groups", body
    )
