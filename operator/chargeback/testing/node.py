"""A real node for the test control plane: containerd, kubelet, kube-scheduler, kube-proxy.

Pods run on this machine with Debian's containerd and runc and a CNI bridge. Images are loaded
from archives (the pause image), or pulled from registries on loopback that speak plain HTTP
(containerd's ``hosts.toml`` per registry host). Every address lives inside this machine:

- ``HOST_IP`` (10.254.254.1/32) added to the loopback interface (this kernel has no dummy
  interfaces): the API server and the test's Prometheus listen there; pods reach it through
  their bridge's gateway, so nothing leaves the machine;
- pods get addresses from ``POD_CIDR`` (10.244.0.0/24) on the bridge ``cbr-chargeback``;
- Services get addresses from the control plane's ``SERVICE_CIDR`` (10.0.0.0/24); kube-proxy
  (iptables mode) sends the ``kubernetes`` Service (10.0.0.1:443) to the API server.

Everything is removed on stop, and left-overs of a run that was killed are removed on start:
pods, containers and their shims, mounts, network namespaces, the bridge, the host address,
kube-proxy's iptables chains.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from chargeback.adapters.kube import client_from_kubeconfig
from chargeback.testing.kube import SERVICE_CIDR, ClusterAccess, ControlPlane
from chargeback.testing.process import ComponentError, ManagedProcess, free_port
from chargeback.testing.tools import binary

HOST_IP = "10.254.254.1"
POD_CIDR = "10.244.0.0/24"
BRIDGE = "cbr-chargeback"
NODE_NAME = "chargeback-node"
RUN_DIR = Path("/run/chargeback-node")
"""Sockets and runtime state (short paths: unix socket names are limited to 108 bytes)."""
PAUSE_IMAGE = "localhost/chargeback-pause:1"
STORAGE_CLASS = "local"
START_TIMEOUT = 120.0


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a host command (ip, iptables, mount, ctr), raising with its output on failure."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    if check and done.returncode != 0:
        raise ComponentError(f"{' '.join(argv)} failed: {done.stdout}{done.stderr}")
    return done


class Node:
    """A control plane for pods and one node, in a temporary directory."""

    def __init__(
        self, images: list[Path], workdir: Path | None = None, registries: Sequence[str] = ()
    ) -> None:
        """``images``: archives (``podman save``) to load; ``registries``: plain-HTTP hosts."""
        self.images = images
        self.registries = list(registries)
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="chargeback-node-"))
        self.control_plane = ControlPlane(self.workdir / "control-plane", host=HOST_IP,
                                          for_pods=True)  # fmt: skip
        self.processes: list[ManagedProcess] = []
        self.access: ClusterAccess | None = None
        self._netns_before: set[str] = set()
        self.timings: dict[str, float] = {}

    @property
    def socket(self) -> Path:
        """Containerd's socket."""
        return RUN_DIR / "containerd.sock"

    def images_present(self) -> set[str]:
        """References of the images in the node's runtime (loaded or pulled)."""
        listed = run("ctr", "--address", str(self.socket), "-n", "k8s.io", "images", "ls", "-q")
        return set(listed.stdout.split())

    def start(self) -> ClusterAccess:
        """Network, control plane, runtime, kubelet, scheduler and proxy; wait for Ready."""
        began = time.monotonic()
        clean_host()
        self._netns_before = _netns()
        _host_network()
        self.access = access = self.control_plane.start()
        self._start("kube-scheduler", [
            f"--kubeconfig={access.kubeconfig}", "--leader-elect=false",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}",
        ])  # fmt: skip
        self._start_containerd()
        for archive in self.images:
            run("ctr", "--address", str(self.socket), "-n", "k8s.io", "images", "import",
                "--no-unpack", str(archive))  # fmt: skip
        self._start_kubelet(access)
        self._start_proxy(access)
        api = client_from_kubeconfig(access.kubeconfig)
        _wait(lambda: _node_ready(api), "the node to be Ready", START_TIMEOUT, self._logs)
        _local_storage(api, self.workdir / "volumes")
        self.timings["node start-up"] = time.monotonic() - began
        return access

    def _start(self, name: str, args: list[str]) -> ManagedProcess:
        proc = ManagedProcess(name, [str(binary(name)), *args], self.workdir / f"{name}.log")
        proc.start()
        self.processes.append(proc)
        return proc

    def _start_containerd(self) -> None:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        cni = RUN_DIR / "cni"
        cni.mkdir(exist_ok=True)
        (cni / "10-chargeback.conflist").write_text(json.dumps(CNI_CONFIG, indent=1))
        hosts = RUN_DIR / "certs.d"
        for registry in self.registries:
            (hosts / registry).mkdir(parents=True, exist_ok=True)
            (hosts / registry / "hosts.toml").write_text(HOSTS_TOML.format(host=registry))
        config = CONTAINERD_CONFIG.format(
            root=self.workdir / "containerd", state=RUN_DIR / "state", socket=self.socket,
            cni=cni, pause=PAUSE_IMAGE, hosts=hosts,
        )  # fmt: skip
        (RUN_DIR / "containerd.toml").write_text(config)
        proc = self._start("containerd", ["--config", str(RUN_DIR / "containerd.toml")])
        proc.wait_ready(lambda: run("ctr", "--address", str(self.socket), "version").returncode
                        == 0, START_TIMEOUT)  # fmt: skip

    def _start_kubelet(self, access: ClusterAccess) -> None:
        config = {**KUBELET_CONFIG, "containerRuntimeEndpoint": f"unix://{self.socket}",
                  "port": free_port(), "healthzPort": free_port(),
                  "staticPodPath": ""}  # fmt: skip
        path = self.workdir / "kubelet.yaml"
        path.write_text(yaml.safe_dump(config))
        self._start("kubelet", [
            f"--config={path}", f"--kubeconfig={access.kubeconfig}",
            f"--root-dir={self.workdir / 'kubelet'}", f"--hostname-override={NODE_NAME}",
            f"--node-ip={HOST_IP}", "--v=1",
        ])  # fmt: skip

    def _start_proxy(self, access: ClusterAccess) -> None:
        health = free_port()
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
            "mode": "iptables", "clusterCIDR": POD_CIDR, "hostnameOverride": NODE_NAME,
            "clientConnection": {"kubeconfig": str(access.kubeconfig)},
            "healthzBindAddress": f"127.0.0.1:{health}",
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
            # Node ports only on the node's own address: no route_localnet, no localnet rules.
            "iptables": {"localhostNodePorts": False},
            "nodePortAddresses": [f"{HOST_IP}/32"],
            # Leave the kernel's conntrack settings alone (no CAP to change them here).
            "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s",
                          "tcpCloseWaitTimeout": "0s"},
        }  # fmt: skip
        path = self.workdir / "kube-proxy.yaml"
        path.write_text(yaml.safe_dump(config))
        proc = self._start("kube-proxy", [f"--config={path}", "--v=1"])
        proc.wait_ready(lambda: _http_ok(f"http://127.0.0.1:{health}/healthz"), START_TIMEOUT)

    def _logs(self) -> str:
        tails = []
        for proc in self.processes:
            text = proc.log_path.read_text(errors="replace") if proc.log_path.exists() else ""
            tails.append(f"--- {proc.name}\n" + "\n".join(text.splitlines()[-15:]))
        return "\n".join(tails)

    def stop(self) -> None:
        """Delete every pod, stop every component, remove what they left on the host."""
        if self.access is not None:
            # Best effort: the host clean-up below removes whatever is left.
            with contextlib.suppress(Exception):
                _delete_pods(client_from_kubeconfig(self.access.kubeconfig))
        for proc in reversed(self.processes):
            proc.stop(timeout=30)
        self.processes.clear()
        self.control_plane.stop()
        clean_host(self._netns_before)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Node:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def clean_host(keep_netns: set[str] | None = None) -> None:
    """Remove what a node leaves on the host; safe to call when there is nothing to remove."""
    # Containers and their shims outlive containerd: kill them through runc's state.
    runc_root = RUN_DIR / "state" / "runc" / "k8s.io"
    if runc_root.exists():
        for container in json.loads(run("runc", "--root", str(runc_root), "list", "--format",
                                        "json", check=False).stdout or "null") or []:  # fmt: skip
            run("runc", "--root", str(runc_root), "delete", "--force", container["id"],
                check=False)  # fmt: skip
    run("pkill", "-f", f"containerd-shim.*-address {RUN_DIR}", check=False)
    for mount in reversed(_mounts()):
        run("umount", "-l", mount, check=False)
    for name in _netns() - (keep_netns or set()):
        if name.startswith("cni-"):
            run("ip", "netns", "delete", name, check=False)
    run("ip", "link", "delete", BRIDGE, check=False)
    run("ip", "addr", "del", f"{HOST_IP}/32", "dev", "lo", check=False)
    run(str(binary("kube-proxy")), "--cleanup", check=False)
    _remove_kube_chains()
    shutil.rmtree(RUN_DIR, ignore_errors=True)


def _remove_kube_chains() -> None:
    """Rules and chains named KUBE-* that ``kube-proxy --cleanup`` leaves (KUBE-FIREWALL)."""
    for program in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            listed = run(program, "-t", table, "-S", check=False).stdout.splitlines()
            for rule in listed:
                words = rule.split()
                if words[:1] == ["-A"] and "KUBE-" in rule and not words[1].startswith("KUBE-"):
                    run(program, "-t", table, "-D", *words[1:], check=False)
            chains = [r.split()[1] for r in listed if r.startswith("-N KUBE-")]
            for flag in ("-F", "-X"):
                for chain in chains:
                    run(program, "-t", table, flag, chain, check=False)


def _mounts() -> list[str]:
    """Mount points of this node's runtime, kubelet and pods (in mount order)."""
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1]
        if point.startswith(str(RUN_DIR)) or "/chargeback-node-" in point:
            found.append(point)
    return found


def _netns() -> set[str]:
    path = Path("/var/run/netns")
    return {p.name for p in path.iterdir()} if path.exists() else set()


def _host_network() -> None:
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
    run("ip", "addr", "add", f"{HOST_IP}/32", "dev", "lo")


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback URL
        return bool(response.status == 200)


def _wait(probe: Any, what: str, timeout: float, logs: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except Exception:  # noqa: S110 - not yet
            pass
        time.sleep(1)
    raise ComponentError(f"timed out waiting for {what}" + (f"\n{logs()}" if logs else ""))


def _node_ready(api: client.ApiClient) -> bool:
    node = client.CoreV1Api(api).read_node(NODE_NAME)
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _local_storage(api: client.ApiClient, root: Path) -> None:
    """A StorageClass ``local`` (bound when a pod is scheduled) with one PersistentVolume."""
    storage = client.StorageV1Api(api)
    storage_class: Any = {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS}, "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Retain",
    }  # fmt: skip
    storage.create_storage_class(storage_class)
    path = root / "pv-0"
    path.mkdir(parents=True, exist_ok=True)
    volume: Any = {
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "local-pv-0"},
        "spec": {
            "capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"],
            "storageClassName": STORAGE_CLASS, "persistentVolumeReclaimPolicy": "Retain",
            "local": {"path": str(path)},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE_NAME]}]}]}},
        },
    }  # fmt: skip
    client.CoreV1Api(api).create_persistent_volume(volume)


def _delete_pods(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for pod in core.list_pod_for_all_namespaces().items:
        meta = pod.metadata
        if meta is not None and meta.name and meta.namespace:
            core.delete_namespaced_pod(meta.name, meta.namespace, grace_period_seconds=0)
    _wait(lambda: not core.list_pod_for_all_namespaces().items, "pods to be deleted", 60)


CNI_CONFIG: dict[str, Any] = {
    "cniVersion": "1.0.0",
    "name": "chargeback",
    "plugins": [
        {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
         "hairpinMode": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]],
                  "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "loopback"},
    ],
}  # fmt: skip

CONTAINERD_CONFIG = """version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # No CAP_SYS_RESOURCE here: a negative oom_score_adj is refused.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{hosts}"
"""

HOSTS_TOML = """# A registry on loopback that speaks plain HTTP.
server = "http://{host}"
[host."http://{host}"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
"""

KUBELET_CONFIG: dict[str, Any] = {
    "apiVersion": "kubelet.config.k8s.io/v1beta1",
    "kind": "KubeletConfiguration",
    # This VM: cgroup v1 (hybrid), no systemd, swap allowed, no CAP_SYS_RESOURCE.
    "cgroupDriver": "cgroupfs",
    "failCgroupV1": False,
    "failSwapOn": False,
    # The API server reaches the kubelet (logs, exec) on the host's address; nothing outside
    # this machine can.
    "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
    "authorization": {"mode": "AlwaysAllow"},
    "address": HOST_IP,
    "healthzBindAddress": "127.0.0.1",
    "readOnlyPort": 0,
    "resolvConf": "/etc/resolv.conf",
    "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                     "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
    "imageGCHighThresholdPercent": 100,
    "imageGCLowThresholdPercent": 99,
    "enforceNodeAllocatable": [],
    "makeIPTablesUtilChains": False,
    "serializeImagePulls": False,
}  # fmt: skip

__all__ = ["HOST_IP", "NODE_NAME", "POD_CIDR", "SERVICE_CIDR", "STORAGE_CLASS", "Node"]
