"""The test node leaves nothing on the host, even after a run that was killed."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from kubernetes import client

from chargeback.adapters.kube import client_from_kubeconfig
from chargeback.testing.node import BRIDGE, HOST_IP, PAUSE_IMAGE, RUN_DIR, Node
from chargeback.testing.tools import image_archive

pytestmark = pytest.mark.node


def host_state() -> dict[str, object]:
    """What a node could leave behind: mounts, namespaces, links, addresses, rules, processes."""
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    netns = Path("/var/run/netns")
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    processes = subprocess.run(["pgrep", "-af", f"kubelet|kube-proxy|{RUN_DIR}"],
                               capture_output=True, text=True, check=False).stdout  # fmt: skip
    addresses = subprocess.run(["ip", "addr", "show", "lo"], capture_output=True, text=True,
                               check=True).stdout  # fmt: skip
    return {
        "mounts": sorted(m for m in mounts if str(RUN_DIR) in m or "chargeback-node-" in m),
        "netns": sorted(p.name for p in netns.iterdir()) if netns.exists() else [],
        "bridge": Path(f"/sys/class/net/{BRIDGE}").exists(),
        "address": HOST_IP in addresses,
        "rules": sorted(line for line in rules.splitlines() if "KUBE-" in line),
        "processes": sorted(line for line in processes.splitlines() if "pgrep" not in line),
    }


def run_a_pod(node: Node) -> None:
    assert node.access is not None
    core = client.CoreV1Api(client_from_kubeconfig(node.access.kubeconfig))
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "image": PAUSE_IMAGE, "imagePullPolicy": "Never"}]}}  # fmt: skip
    core.create_namespaced_pod("default", pod)
    deadline = time.monotonic() + 120
    while core.read_namespaced_pod("p", "default").status.phase != "Running":
        assert time.monotonic() < deadline, "the pod did not run"
        time.sleep(1)


def test_a_killed_node_is_cleaned_by_the_next_which_leaves_nothing() -> None:
    before = host_state()
    pause = image_archive("chargeback-pause-1")
    crashed = Node([pause])
    crashed.start()
    run_a_pod(crashed)
    during = host_state()
    assert during["bridge"]
    assert during["address"]
    assert during["mounts"]
    assert during["rules"]
    # As if the test run were killed: every component dies at once, nothing is cleaned.
    for proc in [*crashed.processes, *crashed.control_plane.processes]:
        proc.stop(timeout=5, sig=signal.SIGKILL)
    with Node([pause]) as node:  # starts clean over the left-overs
        run_a_pod(node)
    shutil.rmtree(crashed.workdir, ignore_errors=True)
    assert host_state() == before
