"""Kubernetes reads the services need beyond kopf: Groups, scopes, namespaces, API discovery."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from chargeback.adapters.ttl import TtlCache
from chargeback.api.common import GROUP, VERSION

OPENSHIFT_USER_GROUP = "user.openshift.io"


def openshift_groups(api: client.ApiClient) -> dict[str, list[str]] | None:
    """Group name -> member usernames, or None where the Group API does not exist."""
    discovery = client.ApisApi(api).get_api_versions()
    if not any(g.name == OPENSHIFT_USER_GROUP for g in discovery.groups or []):
        return None
    try:
        listing = cast(
            "dict[str, Any]",
            client.CustomObjectsApi(api).list_cluster_custom_object(
                OPENSHIFT_USER_GROUP, "v1", "groups"
            ),
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return {
        item["metadata"]["name"]: list(item.get("users") or []) for item in listing.get("items", [])
    }


def client_from_kubeconfig(path: Path) -> client.ApiClient:
    """An ApiClient for the cluster and user of a kubeconfig file."""
    return cast("client.ApiClient", config.new_client_from_config(config_file=str(path)))  # type: ignore[no-untyped-call]


def service_address() -> str | None:
    """The API server's address in a pod, or None outside one.

    Read from the environment Kubernetes sets, as client-go and the kubernetes client read it.
    """
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    if not (host and port):
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def default_client() -> client.ApiClient:
    """An ApiClient from the pod's ServiceAccount, or else from the kubeconfig ($KUBECONFIG)."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        # Read $KUBECONFIG now: the client library reads it once, when first imported.
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]
    return client.ApiClient()


def object_uid(api: client.ApiClient, plural: str, name: str) -> str | None:
    """The uid of a cluster-scoped chargeback object, or None when it does not exist."""
    try:
        body = cast(
            "dict[str, Any]",
            client.CustomObjectsApi(api).get_cluster_custom_object(GROUP, VERSION, plural, name),
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return str(body["metadata"]["uid"])


def usage_scopes(api: client.ApiClient) -> list[tuple[str, dict[str, Any]]]:
    """Every UsageScope: (name, spec); none when the CRD is not installed."""
    try:
        listed = cast(dict[str, Any], client.CustomObjectsApi(api).list_cluster_custom_object(
            GROUP, VERSION, "usagescopes"
        ))  # fmt: skip
    except ApiException as exc:
        if exc.status == 404:
            return []
        raise
    return [(item["metadata"]["name"], item.get("spec") or {}) for item in listed["items"]]


def namespace_labels(api: client.ApiClient, name: str) -> dict[str, str]:
    """The labels of a namespace (empty when it is gone)."""
    try:
        namespace = client.CoreV1Api(api).read_namespace(name)
    except ApiException as exc:
        if exc.status == 404:
            return {}
        raise
    metadata = namespace.metadata
    return dict(metadata.labels or {}) if metadata is not None else {}


_discovered: TtlCache[bool] = TtlCache(30.0)


def custom_resource_exists(api: client.ApiClient, group: str, version: str, plural: str) -> bool:
    """Whether the API serves ``plural`` in ``group/version`` (discovery cached for 30 s)."""
    key = (id(api), group, version, plural)
    return _discovered.get(key, lambda: _discover(api, group, version, plural))


def _discover(api: client.ApiClient, group: str, version: str, plural: str) -> bool:
    groups = client.ApisApi(api).get_api_versions().groups or []
    if not any(g.name == group for g in groups):
        return False
    try:
        resources = client.CustomObjectsApi(api).get_api_resources(group, version)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return any(r.name == plural for r in resources.resources or [])


def api_reason(exc: ApiException) -> str:
    """The API server's message of a refused request (its Status), else the HTTP status."""
    try:
        return str(json.loads(exc.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return f"{exc.status} {exc.reason}"


def refusal(exc: Exception) -> str | None:
    """``HTTP <code>: <the API server's message>`` when ``exc`` is a refused API request."""
    if not isinstance(exc, ApiException):
        return None
    return f"the API server answered HTTP {exc.status}: {api_reason(exc)}"


def list_custom_objects(
    api: client.ApiClient, group: str, version: str, plural: str, namespaces: Sequence[str] = ()
) -> list[dict[str, Any]] | None:
    """Every object of a namespaced custom resource, in ``namespaces`` or in all.

    None when the API does not serve the resource.
    """
    if not custom_resource_exists(api, group, version, plural):
        return None
    objects = client.CustomObjectsApi(api)
    if not namespaces:
        found = cast(dict[str, Any], objects.list_cluster_custom_object(group, version, plural))
        return list(found.get("items") or [])
    items: list[dict[str, Any]] = []
    for namespace in namespaces:
        listed = objects.list_namespaced_custom_object(group, version, namespace, plural)
        items += cast(dict[str, Any], listed).get("items") or []
    return items
