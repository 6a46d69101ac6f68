"""Dashboard provisioning for the Grafana sidecar and grafana-operator.

ConfigMaps carry the sidecar label and folder annotations; GrafanaDashboard objects are made
when that CRD exists. Both are owned by the TierPricing, so they go when it goes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

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
    if settings.grafana_operator == "auto":
        return grafana_operator_installed(api)
    return settings.grafana_operator == "on"


class DashboardError(Exception):
    """A dashboard could not be written; the message says where and why."""


def provision(
    api: client.ApiClient, settings: DashboardSettings, owner: PricingOwner, name: str,
    document: dict[str, Any],
) -> list[str]:  # fmt: skip
    """Create or update the dashboard's ConfigMap (and GrafanaDashboard); return what was made."""
    try:
        return _provision(api, settings, owner, name, document)
    except ApiException as exc:
        reason = api_reason(exc)
        raise DashboardError(
            f"cannot write dashboard {name} in namespace {settings.namespace}: {reason}"
        ) from exc


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
