"""Simulated model serving with ground truth: pods, GPU requests, nodes and GPU utilisation.

It plays kube-state-metrics and the DCGM exporter for model-serving pods: each deployment runs
pods of one model on nodes of one GPU product; pods start and stop over time (a stopped pod
shows phase Succeeded for a while, then its series end, as kube-state-metrics does); DCGM
reports an integer utilisation per GPU while the pod runs. Pods that must not count are mixed in:
a GPU notebook without the model label, a serving pod stuck Pending on no node, and a CPU-only
pod. The ground truth is the GPU-milliseconds per (model, product, bucket) at the scrape
resolution, and the utilisation integrals per (model, bucket).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

from chargeback.testing.simulator import HOUR_MS, bucket_start

MODEL_LABEL = "label_serving_kserve_io_inferenceservice"
PRODUCT_LABEL = "label_nvidia_com_gpu_product"
LINGER_MS = 600_000
"""How long a finished pod's series stay (phase Succeeded) before they end."""


@dataclass(frozen=True)
class Deployment:
    """Pods serving one model on one GPU product; times are offsets from the scenario start."""

    model: str
    product: str
    """GPU product of the nodes ("" for nodes without the product label)."""
    gpus_per_pod: int
    pods: tuple[tuple[int, int | None], ...]
    """(start, end) offsets of each pod in ms; end None: runs to the end."""
    utilization: int = 60
    """Mean GPU utilisation in percent."""


@dataclass(frozen=True)
class ServingScenario:
    """What to simulate."""

    start_ms: int
    hours: int
    deployments: tuple[Deployment, ...]
    scrape_interval_ms: int = 60_000
    bucket_ms: int = HOUR_MS
    seed: int = 7
    dcgm: bool = True
    namespace: str = "models"


@dataclass
class ServingSimulation:
    """Series as scraped, and the truth."""

    scenario: ServingScenario
    series: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[int, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    gpu_ms: dict[tuple[str, str, int], int] = field(default_factory=lambda: defaultdict(int))
    """(model, product, bucket start) -> GPU-milliseconds of running serving pods."""
    busy_ms: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    """(model, bucket start) -> sum over scrapes of utilisation percent x interval."""
    observed_gpu_ms: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    """(model, bucket start) -> GPU-milliseconds that reported a utilisation."""

    def add(self, metric: str, labels: dict[str, str], t_ms: int, value: int) -> None:
        """Record one scraped sample."""
        self.series[(metric, tuple(sorted(labels.items())))].append((t_ms, value))

    def openmetrics(self) -> Iterator[str]:
        """OpenMetrics lines (no ``# EOF``: combine with the token history)."""
        by_metric: dict[str, list[tuple[tuple[tuple[str, str], ...], list[tuple[int, int]]]]]
        by_metric = defaultdict(list)
        for (metric, labels), points in sorted(self.series.items()):
            by_metric[metric].append((labels, points))
        for metric, entries in by_metric.items():
            yield f"# TYPE {metric} gauge"
            for labels, points in entries:
                text = ",".join(f'{k}="{v}"' for k, v in labels)
                for t_ms, value in points:
                    yield f"{metric}{{{text}}} {value} {t_ms / 1000:.3f}"

    def gpu_ms_by_model(self, start_ms: int, end_ms: int) -> dict[str, int]:
        """GPU-milliseconds per model over buckets starting in [start, end)."""
        totals: dict[str, int] = defaultdict(int)
        for (model, _, bucket), value in self.gpu_ms.items():
            if start_ms <= bucket < end_ms:
                totals[model] += value
        return dict(totals)


def simulate_serving(scenario: ServingScenario) -> ServingSimulation:
    """Run the scenario; deterministic for a given seed."""
    rng = random.Random(scenario.seed)
    sim = ServingSimulation(scenario)
    ns = scenario.namespace
    end_ms = scenario.start_ms + scenario.hours * HOUR_MS
    step = scenario.scrape_interval_ms
    t0 = scenario.start_ms
    pods = [
        (f"{d.model}-predictor-{i}", d, t0 + a, None if b is None else t0 + b)
        for d in scenario.deployments
        for i, (a, b) in enumerate(d.pods)
    ]
    products = sorted({d.product for d in scenario.deployments})
    for t in range(scenario.start_ms, end_ms + 1, step):
        bucket = bucket_start(t, scenario.bucket_ms)
        for product in products:
            node_labels = {"node": _node(product)}
            if product:
                node_labels[PRODUCT_LABEL] = product
            sim.add("kube_node_labels", node_labels, t, 1)
        for name, deployment, started, ended in pods:
            if t < started or (ended is not None and t >= ended + LINGER_MS):
                continue
            running = ended is None or t < ended
            pod = {"namespace": ns, "pod": name}
            sim.add("kube_pod_labels", {**pod, MODEL_LABEL: deployment.model}, t, 1)
            sim.add("kube_pod_info", {**pod, "node": _node(deployment.product)}, t, 1)
            sim.add("kube_pod_status_phase", {**pod, "phase": "Running"}, t, int(running))
            sim.add("kube_pod_status_phase", {**pod, "phase": "Succeeded"}, t, int(not running))
            requests = {**pod, "container": "kserve-container", "resource": "nvidia_com_gpu",
                        "unit": "integer"}  # fmt: skip
            sim.add("kube_pod_container_resource_requests", requests, t, deployment.gpus_per_pod)
            if not running:
                continue
            key = (deployment.model, deployment.product, bucket)
            sim.gpu_ms[key] += deployment.gpus_per_pod * step
            if not scenario.dcgm:
                continue
            for gpu in range(deployment.gpus_per_pod):
                mean = deployment.utilization
                percent = max(0, min(100, mean + rng.randint(-25, 25)))
                labels = {**pod, "container": "kserve-container", "gpu": str(gpu),
                          "Hostname": _node(deployment.product),
                          "modelName": deployment.product or "unknown"}  # fmt: skip
                sim.add("DCGM_FI_DEV_GPU_UTIL", labels, t, percent)
                sim.busy_ms[(deployment.model, bucket)] += percent * step
                sim.observed_gpu_ms[(deployment.model, bucket)] += step
        _distractors(sim, t, ns)
    return sim


def _node(product: str) -> str:
    return f"gpu-node-{product.lower() or 'unlabelled'}"


def _distractors(sim: ServingSimulation, t: int, ns: str) -> None:
    """Pods that request resources but must not count as model serving."""
    notebook = {"namespace": "data-science", "pod": "notebook-0"}
    sim.add("kube_pod_info", {**notebook, "node": "gpu-node-unlabelled"}, t, 1)
    sim.add("kube_pod_status_phase", {**notebook, "phase": "Running"}, t, 1)
    sim.add("kube_pod_container_resource_requests",
            {**notebook, "container": "jupyter", "resource": "nvidia_com_gpu", "unit": "integer"},
            t, 1)  # fmt: skip
    pending = {"namespace": ns, "pod": "pending-predictor-0"}
    sim.add("kube_pod_labels", {**pending, MODEL_LABEL: "pending-model"}, t, 1)
    sim.add("kube_pod_info", {**pending, "node": ""}, t, 1)
    sim.add("kube_pod_status_phase", {**pending, "phase": "Running"}, t, 0)
    sim.add("kube_pod_container_resource_requests",
            {**pending, "container": "kserve-container", "resource": "nvidia_com_gpu",
             "unit": "integer"}, t, 2)  # fmt: skip
    cpu = {"namespace": ns, "pod": "router-0"}
    sim.add("kube_pod_labels", {**cpu, MODEL_LABEL: "router"}, t, 1)
    sim.add("kube_pod_info", {**cpu, "node": "cpu-node"}, t, 1)
    sim.add("kube_pod_status_phase", {**cpu, "phase": "Running"}, t, 1)
    sim.add("kube_pod_container_resource_requests",
            {**cpu, "container": "router", "resource": "cpu", "unit": "core"}, t, 2)  # fmt: skip
