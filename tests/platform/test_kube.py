"""The control plane is real: CRDs, status, watches, RBAC, CEL, garbage collection, Pod Security."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from chargeback.testing.kube import ClusterAccess

GROUP = "platform.chargeback.dev"


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Poll until ``predicate`` returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s")


def _widget_crd() -> dict[str, Any]:
    spec_schema = {
        "type": "object",
        "required": ["size"],
        "properties": {
            "size": {"type": "integer", "minimum": 1},
            "min": {"type": "integer"},
            "max": {"type": "integer"},
        },
        "x-kubernetes-validations": [
            {"rule": "!has(self.min) || !has(self.max) || self.min < self.max",
             "message": "min must be less than max", "fieldPath": ".min"}
        ],
    }  # fmt: skip
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": spec_schema,
                                "status": {
                                    "type": "object",
                                    "properties": {"observed": {"type": "integer"}},
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def widget_crd(api_client: client.ApiClient) -> str:
    ext = client.ApiextensionsV1Api(api_client)
    body = _widget_crd()
    try:
        ext.create_custom_resource_definition(body)
    except ApiException as exc:
        if exc.status != 409:
            raise

    def established() -> bool:
        crd = ext.read_custom_resource_definition(body["metadata"]["name"])
        return any(
            c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
        )

    wait_for(established)
    return "widgets"


def test_version_reports_the_real_release(api_client: client.ApiClient) -> None:
    info = client.VersionApi(api_client).get_code()
    assert info.git_version.startswith("v1.")
    assert int(info.minor) >= 36


def test_custom_resource_create_patch_watch_status(
    api_client: client.ApiClient, widget_crd: str, namespace: str
) -> None:
    objects = client.CustomObjectsApi(api_client)
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w1"},
            "spec": {"size": 3}}  # fmt: skip
    created = objects.create_namespaced_custom_object(GROUP, "v1", namespace, widget_crd, body)
    objects.patch_namespaced_custom_object(
        GROUP, "v1", namespace, widget_crd, "w1", {"spec": {"size": 5}}
    )
    # Status is a subresource: a spec patch cannot set it, a status patch can.
    objects.patch_namespaced_custom_object_status(
        GROUP, "v1", namespace, widget_crd, "w1", {"status": {"observed": 5}}
    )
    stream = watch.Watch()
    seen: list[tuple[str, int, int | None]] = []
    for event in stream.stream(
        objects.list_namespaced_custom_object, GROUP, "v1", namespace, widget_crd,
        resource_version=created["metadata"]["resourceVersion"], timeout_seconds=10,
    ):  # fmt: skip
        obj = event["object"]
        seen.append((event["type"], obj["spec"]["size"], obj.get("status", {}).get("observed")))
        if obj.get("status", {}).get("observed") == 5:
            stream.stop()
    assert seen == [("MODIFIED", 5, None), ("MODIFIED", 5, 5)]


def test_api_server_enforces_crd_schema_and_cel(
    api_client: client.ApiClient, widget_crd: str, namespace: str
) -> None:
    objects = client.CustomObjectsApi(api_client)
    bad = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "bad"},
           "spec": {"size": 1, "min": 5, "max": 2}}  # fmt: skip
    with pytest.raises(ApiException) as err:
        objects.create_namespaced_custom_object(GROUP, "v1", namespace, widget_crd, bad)
    assert err.value.status == 422
    assert "spec.min: Invalid value" in err.value.body
    assert "min must be less than max" in err.value.body
    bad["spec"] = {"size": 0}
    with pytest.raises(ApiException) as err:
        objects.create_namespaced_custom_object(GROUP, "v1", namespace, widget_crd, bad)
    assert "spec.size" in err.value.body
    assert "should be greater than or equal to 1" in err.value.body


def test_service_account_token_rbac(
    api_client: client.ApiClient, cluster: ClusterAccess, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    token = core.create_namespaced_service_account_token(
        "reader", namespace, client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))
    ).status.token  # fmt: skip
    sa_config = client.Configuration()
    sa_config.host = cluster.server
    sa_config.ssl_ca_cert = str(cluster.ca_file)
    sa_config.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(sa_config) as sa_client:
        sa_core = client.CoreV1Api(sa_client)
        with pytest.raises(ApiException) as err:
            sa_core.list_namespaced_config_map(namespace)
        assert err.value.status == 403
        assert f"system:serviceaccount:{namespace}:reader" in err.value.body

        rbac.create_namespaced_role(namespace, client.V1Role(
            metadata=client.V1ObjectMeta(name="read-configmaps"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"],
                                       verbs=["list"])]))  # fmt: skip
        rbac.create_namespaced_role_binding(namespace, client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="reader"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role",
                                      name="read-configmaps"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader",
                                           namespace=namespace)]))  # fmt: skip

        def allowed() -> bool:
            try:
                sa_core.list_namespaced_config_map(namespace)
            except ApiException as exc:
                if exc.status == 403:
                    return False
                raise
            return True

        wait_for(allowed, timeout=10)


def test_garbage_collector_removes_owned_objects(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="owned", owner_references=[reference])
        ),
    )
    core.delete_namespaced_config_map("owner", namespace)

    def gone() -> bool:
        try:
            core.read_namespaced_config_map("owned", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=60)


def _privileged_pod() -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name="privileged"),
        spec=client.V1PodSpec(containers=[client.V1Container(
            name="c", image="registry.invalid/x:1",
            security_context=client.V1SecurityContext(privileged=True))]),
    )  # fmt: skip


def test_pod_security_admission_rejects_privileged_pods(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    # Accepted where no policy is enforced: the rejection below is Pod Security's doing.
    core.create_namespaced_pod(namespace, _privileged_pod(), dry_run="All")
    core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    # Pod Security reads namespace labels from the API server's informer cache: the new label
    # reaches it shortly after the patch, not at once.
    deadline = time.monotonic() + 10
    while True:
        try:
            core.create_namespaced_pod(namespace, _privileged_pod(), dry_run="All")
        except ApiException as exc:
            refused = exc
            break
        assert time.monotonic() < deadline, "a privileged pod was admitted under `restricted`"
        time.sleep(0.1)
    assert refused.status == 403
    message = json.loads(refused.body)["message"]
    assert 'violates PodSecurity "restricted:latest"' in message
    assert "privileged" in message
