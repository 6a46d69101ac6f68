"""Infrastructure usage: GPUs allocated to each model's serving pods, and how busy they are.

GPU usage is a gauge, not a counter: the GPUs requested by running serving pods at each instant.
It is integrated over time at a fixed resolution (the scrape interval): usage in a bucket (a, b]
is the sum, over the resolution steps t in (a, b], of the value at t times the step. With
scrapes at those steps this is exact at the scrape resolution, and consecutive buckets tile
time without overlap, like the token buckets. Values are kept as whole GPU-milliseconds.

The queries are operator settings (never tenant input): the defaults join kube-state-metrics'
GPU requests to the model label on the serving pods (KServe's InferenceService label) and to the
GPU product label of the node, and DCGM's utilisation to the same pods.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal

from chargeback.domain.buckets import HOUR_MS
from chargeback.domain.selectors import quote

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
RUNNING = 'max by (namespace, pod) (kube_pod_status_phase{phase="Running"} == 1)'
"""(namespace, pod) of running pods: finished pods' series linger without staleness markers."""
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


@dataclass(frozen=True)
class GpuRow:
    """GPU-milliseconds allocated to one model on one GPU product in one bucket."""

    bucket_start_ms: int
    model: str
    product: str
    gpu_ms: int


@dataclass(frozen=True)
class UtilizationRow:
    """Utilisation of one model's GPUs in one bucket, as integrals over time.

    ``busy_ms`` is the sum over steps of the utilisation percentages of the model's GPUs times
    the step; ``observed_gpu_ms`` the GPU-milliseconds that reported a utilisation at all. Their
    ratio is the mean utilisation in percent.
    """

    bucket_start_ms: int
    model: str
    busy_ms: int
    observed_gpu_ms: int


@dataclass(frozen=True)
class InfraSource:
    """Where GPU allocation and utilisation come from (operator settings, with safe defaults)."""

    model_label: str = "label_serving_kserve_io_inferenceservice"
    """kube_pod_labels label naming the model a pod serves (KServe InferenceService name)."""
    product_label: str = "label_nvidia_com_gpu_product"
    """kube_node_labels label naming the node's GPU product (nvidia.com/gpu.product)."""
    gpu_resource: str = "nvidia_com_gpu"
    """The resource label of GPU requests in kube_pod_container_resource_requests."""
    utilization_metric: str = "DCGM_FI_DEV_GPU_UTIL"
    """DCGM exporter's per-GPU utilisation gauge (percent), labelled with namespace and pod."""
    resolution_ms: int = 30_000
    """Integration step: set it to the scrape interval of kube-state-metrics."""
    gpu_query: str = ""
    """Override: GPUs allocated at an instant, by model and product."""
    utilization_query: str = ""
    """Override: utilisation percentages of serving GPUs at an instant, one series per GPU,
    labelled with model."""

    def __post_init__(self) -> None:
        for name in ("model_label", "product_label"):
            if not LABEL_NAME.fullmatch(getattr(self, name)):
                raise ValueError(f"{name} {getattr(self, name)!r} is not a Prometheus label name")
        if not METRIC_NAME.fullmatch(self.utilization_metric):
            raise ValueError(f"utilization_metric {self.utilization_metric!r} is not a metric name")
        if self.resolution_ms < 1000:
            raise ValueError(f"resolution {self.resolution_ms} ms is below one second")

    def source_id(self) -> str:
        """Stable identity of this source in the ledger."""
        canonical = json.dumps(asdict(self), sort_keys=True)
        return "gpu-" + hashlib.sha256(canonical.encode()).hexdigest()[:20]

    def pod_models(self) -> str:
        """(namespace, pod) -> model, from the serving pods' labels."""
        label = self.model_label
        return (
            f'max by (namespace, pod, model) (label_replace(kube_pod_labels{{{label}!=""}}, '
            f'"model", "$1", "{label}", "(.+)"))'
        )

    def gpus(self) -> str:
        """GPUs requested by running serving pods, by model and GPU product, at an instant."""
        if self.gpu_query:
            return self.gpu_query
        resource = quote(self.gpu_resource)
        products = (
            "max by (namespace, pod, product) ("
            'max by (namespace, pod, node) (kube_pod_info{node!=""}) '
            "* on (node) group_left (product) max by (node, product) ("
            f'label_replace(kube_node_labels, "product", "$1", "{self.product_label}", "(.*)")))'
        )
        return (
            "sum by (model, product) ("
            f"sum by (namespace, pod) (kube_pod_container_resource_requests{{resource={resource}}})"
            f" * on (namespace, pod) {RUNNING}"
            f" * on (namespace, pod) group_left (model) {self.pod_models()}"
            f" * on (namespace, pod) group_left (product) {products})"
        )

    def utilization(self) -> str:
        """Utilisation percent of each serving GPU, labelled with its model, at an instant."""
        if self.utilization_query:
            return self.utilization_query
        return (
            f'{self.utilization_metric}{{pod!=""}} * on (namespace, pod) group_left () {RUNNING}'
            f" * on (namespace, pod) group_left (model) {self.pod_models()}"
        )


def gpu_hours(gpu_ms: int) -> str:
    """GPU-milliseconds as GPU-hours with three decimals (exact to 3.6 GPU-seconds)."""
    hours = Decimal(gpu_ms) / HOUR_MS
    return str(hours.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP))
