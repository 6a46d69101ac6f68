"""PrometheusRule objects (prometheus-operator's API) holding a report's budget alerts.

Made in the report's namespace and owned by it, only where the ``monitoring.coreos.com`` CRD
exists (OpenShift user-workload monitoring routes such rules to its Alertmanager).
"""

from __future__ import annotations

from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chargeback.adapters.exports import MANAGED_BY, REPORT_LABEL, Owner
from chargeback.adapters.kube import api_reason, custom_resource_exists
from chargeback.api.common import API_VERSION
from chargeback.domain.names import LABEL_VALUE, fit

GROUP, VERSION, PLURAL = "monitoring.coreos.com", "v1", "prometheusrules"


class AlertRulesError(Exception):
    """The rules could not be written; the message says where and why."""


def rule_name(owner: Owner) -> str:
    """The PrometheusRule of a report's budgets."""
    return fit(f"{owner.name}-budgets", LABEL_VALUE)


def apply_rules(api: client.ApiClient, owner: Owner, groups: list[dict[str, Any]]) -> bool:
    """Create, update or (without groups) delete the report's PrometheusRule.

    Returns whether the API exists (False: nothing to do on this cluster).
    """
    if not custom_resource_exists(api, GROUP, VERSION, PLURAL):
        return False
    name = rule_name(owner)
    try:
        _apply(client.CustomObjectsApi(api), owner, name, groups)
    except ApiException as exc:
        reason = api_reason(exc)
        raise AlertRulesError(
            f"cannot write PrometheusRule {name} in namespace {owner.namespace}: {reason}"
        ) from exc
    return True


def _apply(
    objects: client.CustomObjectsApi, owner: Owner, name: str, groups: list[dict[str, Any]]
) -> None:
    try:
        current = cast(dict[str, Any], objects.get_namespaced_custom_object(
            GROUP, VERSION, owner.namespace, PLURAL, name))  # fmt: skip
    except ApiException as exc:
        if exc.status != 404:
            raise
        current = None
    if not groups:
        if current is not None:
            objects.delete_namespaced_custom_object(GROUP, VERSION, owner.namespace, PLURAL, name)
        return
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PrometheusRule",
        "metadata": {
            "name": name, "namespace": owner.namespace,
            "labels": {**MANAGED_BY, REPORT_LABEL: fit(owner.name, LABEL_VALUE)},
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": "UsageReport",
                                 "name": owner.name, "uid": owner.uid, "controller": True}],
        },
        "spec": {"groups": groups},
    }  # fmt: skip
    if current is None:
        objects.create_namespaced_custom_object(GROUP, VERSION, owner.namespace, PLURAL, body)
    elif current.get("spec") != body["spec"]:
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        objects.replace_namespaced_custom_object(
            GROUP, VERSION, owner.namespace, PLURAL, name, body
        )
