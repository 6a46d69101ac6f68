"""Dashboard provisioning for the Grafana sidecar and grafana-operator.

ConfigMaps carry the sidecar label and folder annotations; GrafanaDashboard objects are made
when that CRD exists. Both are owned by the TierPricing, so they go when it goes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chargeback.adapters.kube import api_reason, custom_resource_exists
from chargeback.api.common import API_VERSION
from chargeback.domain.names import LABEL_VALUE, fit

GRAFANA_GROUP, GRAFANA_VERSION, GRAFANA_PLURAL = (
    "grafana.integreatly.org",
    "v1beta1",
    "grafanadashboards",
)
PERSES_GROUP, PERSES_VERSION, PERSES_PLURAL = "perses.dev", "v1alpha1", "persesdashboards"
"""The Cluster Observability Operator's PersesDashboard (its spec is a Perses dashboard spec)."""
KEY = "dashboard.json"


@dataclass(frozen=True)
class DashboardSettings:
    """Where and how dashboards are provisioned (operator settings)."""

    namespace: str = "default"
    label: tuple[str, str] = ("grafana_dashboard", "1")
    folder: str = "Chargeback"
    folder_annotations: tuple[str, ...] = ("k8s-sidecar-target-directory", "grafana_folder")
    grafana_operator: str = "auto"  # auto | on | off
    instance_selector: tuple[str, str] = ("dashboards", "grafana")
    kinds: str = "both"  # grafana | perses | both

    @property
    def grafana(self) -> bool:
        """Whether Grafana dashboards are made."""
        return self.kinds in ("grafana", "both")

    @property
    def perses(self) -> bool:
        """Whether Perses dashboards are made (where the PersesDashboard API exists)."""
        return self.kinds in ("perses", "both")


@dataclass(frozen=True)
class PricingOwner:
    """The cluster-scoped TierPricing that owns its dashboards."""

    name: str
    uid: str


def _owner(owner: PricingOwner) -> list[client.V1OwnerReference]:
    return [client.V1OwnerReference(api_version=API_VERSION, kind="TierPricing",
                                    name=owner.name, uid=owner.uid, controller=True)]  # fmt: skip


def grafana_operator_installed(api: client.ApiClient) -> bool:
    """Whether the GrafanaDashboard API exists (discovery cached for 30 s per client)."""
    return custom_resource_exists(api, GRAFANA_GROUP, GRAFANA_VERSION, GRAFANA_PLURAL)


def wants_grafana_dashboard(api: client.ApiClient, settings: DashboardSettings) -> bool:
    """Whether GrafanaDashboard objects are to be made (setting, or CRD present under auto)."""
    if not settings.grafana:
        return False
    if settings.grafana_operator == "auto":
        return grafana_operator_installed(api)
    return settings.grafana_operator == "on"


def wants_perses_dashboard(api: client.ApiClient, settings: DashboardSettings) -> bool:
    """Whether PersesDashboard objects are to be made (setting, and the CRD present)."""
    return settings.perses and custom_resource_exists(
        api, PERSES_GROUP, PERSES_VERSION, PERSES_PLURAL
    )


class DashboardError(Exception):
    """A dashboard could not be written; the message says where and why."""


def provision(
    api: client.ApiClient, settings: DashboardSettings, owner: PricingOwner, name: str,
    document: dict[str, Any], *, perses: dict[str, Any] | None = None,
) -> list[str]:  # fmt: skip
    """Create or update a dashboard as the settings ask and the cluster offers.

    Its ConfigMap and GrafanaDashboard (``document``: Grafana JSON) and its PersesDashboard
    (``perses``: the Perses dashboard spec). Returns what was made.
    """
    made = []
    try:
        if settings.grafana:
            made += _provision(api, settings, owner, name, document)
        if perses is not None and wants_perses_dashboard(api, settings):
            _perses_dashboard(api, settings, owner, name, perses)
            made.append(f"PersesDashboard/{name}")
        elif settings.kinds == "perses":
            raise DashboardError(
                f"cannot write dashboard {name}: the PersesDashboard API ({PERSES_GROUP}/"
                f"{PERSES_VERSION}) is not installed; install the Cluster Observability Operator "
                "or make Grafana dashboards (--dashboard-kinds grafana or both)"
            )
    except ApiException as exc:
        reason = api_reason(exc)
        raise DashboardError(
            f"cannot write dashboard {name} in namespace {settings.namespace}: {reason}"
        ) from exc
    return made


def _perses_dashboard(
    api: client.ApiClient, settings: DashboardSettings, owner: PricingOwner, name: str,
    spec: dict[str, Any],
) -> None:  # fmt: skip
    objects = client.CustomObjectsApi(api)
    args = (PERSES_GROUP, PERSES_VERSION, settings.namespace, PERSES_PLURAL)
    body: dict[str, Any] = {
        "apiVersion": f"{PERSES_GROUP}/{PERSES_VERSION}",
        "kind": "PersesDashboard",
        "metadata": {
            "name": name, "namespace": settings.namespace,
            "labels": {"app.kubernetes.io/managed-by": "chargeback-operator",
                       "chargeback.dev/pricing": fit(owner.name, LABEL_VALUE)},
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": "TierPricing",
                                 "name": owner.name, "uid": owner.uid, "controller": True}],
        },
        "spec": spec,
    }  # fmt: skip
    try:
        current = cast("dict[str, Any]", objects.get_namespaced_custom_object(*args, name))
    except ApiException as exc:
        if exc.status != 404:
            raise
        objects.create_namespaced_custom_object(*args, body)
        return
    if current.get("spec") != spec:
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        objects.replace_namespaced_custom_object(*args, name, body)


def _provision(
    api: client.ApiClient, settings: DashboardSettings, owner: PricingOwner, name: str,
    document: dict[str, Any],
) -> list[str]:  # fmt: skip
    core = client.CoreV1Api(api)
    text = json.dumps(document, indent=2, sort_keys=True)
    wanted_labels = {settings.label[0]: settings.label[1],
                     "app.kubernetes.io/managed-by": "chargeback-operator",
                     "chargeback.dev/pricing": fit(owner.name, LABEL_VALUE)}  # fmt: skip
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(
            name=name, namespace=settings.namespace,
            labels=wanted_labels,
            annotations=dict.fromkeys(settings.folder_annotations, settings.folder),
            owner_references=_owner(owner),
        ),
        data={KEY: text},
    )  # fmt: skip
    made = [f"ConfigMap/{name}"]
    try:
        current = core.read_namespaced_config_map(name, settings.namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
        core.create_namespaced_config_map(settings.namespace, body)
    else:
        labels = current.metadata.labels if current.metadata else None
        if current.data != body.data or labels != wanted_labels:
            core.replace_namespaced_config_map(name, settings.namespace, body)
    if wants_grafana_dashboard(api, settings):
        _grafana_dashboard(api, settings, owner, name)
        made.append(f"GrafanaDashboard/{name}")
    return made


def _grafana_dashboard(
    api: client.ApiClient, settings: DashboardSettings, owner: PricingOwner, name: str
) -> None:
    objects = client.CustomObjectsApi(api)
    body = {
        "apiVersion": f"{GRAFANA_GROUP}/{GRAFANA_VERSION}",
        "kind": "GrafanaDashboard",
        "metadata": {
            "name": name, "namespace": settings.namespace,
            "labels": {"app.kubernetes.io/managed-by": "chargeback-operator"},
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": "TierPricing",
                                 "name": owner.name, "uid": owner.uid, "controller": True}],
        },
        "spec": {
            "instanceSelector": {"matchLabels": {settings.instance_selector[0]:
                                                 settings.instance_selector[1]}},
            "configMapRef": {"name": name, "key": KEY},
            "folder": settings.folder,
            "resyncPeriod": "10m",
        },
    }  # fmt: skip
    try:
        objects.create_namespaced_custom_object(
            GRAFANA_GROUP, GRAFANA_VERSION, settings.namespace, GRAFANA_PLURAL, body
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
