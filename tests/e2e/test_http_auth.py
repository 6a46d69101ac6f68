"""The operator's HTTP endpoint serves nobody what Kubernetes RBAC does not give them.

Real users: ServiceAccounts with tokens from the API server's TokenRequest, bound to roles as a
cluster administrator would bind them. The operator checks each token with a TokenReview and each
request with a SubjectAccessReview.
"""

from __future__ import annotations

import socket
import ssl
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from chargeback.adapters.httpserver import serve
from chargeback.adapters.kube_auth import KubernetesAuth
from chargeback.testing import pki
from chargeback.testing.process import free_port
from tests.conftest import TEST_TENANCY
from tests.e2e.conftest import GROUP, VERSION, Live, Operator, http_get, wait_ready
from tests.e2e.test_operator import _iso, create_pricing, report_body

READ_REPORTS = client.V1PolicyRule(api_groups=[GROUP], resources=["usagereports"],
                                   verbs=["get", "list"])  # fmt: skip
READ_METRICS = client.V1PolicyRule(non_resource_urls=["/metrics"], verbs=["get"])


def _user(api: client.ApiClient, namespace: str, name: str) -> str:
    """A ServiceAccount's token (the API server signs it; no secret involved)."""
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    token: str = core.create_namespaced_service_account_token(name, namespace, request).status.token
    return token


def _grant(api: client.ApiClient, namespace: str, user: str, rule: client.V1PolicyRule) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    subject = client.RbacV1Subject(kind="ServiceAccount", name=user, namespace=namespace)
    name = f"{user}-{uuid.uuid4().hex[:6]}"
    if rule.non_resource_urls:
        rbac.create_cluster_role(client.V1ClusterRole(metadata={"name": name}, rules=[rule]))
        rbac.create_cluster_role_binding(client.V1ClusterRoleBinding(
            metadata={"name": name}, subjects=[subject],
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole",
                                      name=name)))  # fmt: skip
        return
    rbac.create_namespaced_role(namespace, client.V1Role(metadata={"name": name}, rules=[rule]))
    rbac.create_namespaced_role_binding(namespace, client.V1RoleBinding(
        metadata={"name": name}, subjects=[subject],
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role",
                                  name=name)))  # fmt: skip


@pytest.fixture
def other_namespace(api_client: client.ApiClient) -> Iterator[str]:
    name = f"other-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name, "labels": TEST_TENANCY}})
    yield name
    core.delete_namespace(name)


def _report(api: client.ApiClient, live: Live, namespace: str, pricing: str) -> dict[str, Any]:
    start, end = live.start_ms + 2 * 3_600_000, live.start_ms + 4 * 3_600_000
    body = report_body("usage", pricing, period={"start": _iso(start), "end": _iso(end)})
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "usagereports", body
    )
    return wait_ready(api, namespace, "usage")


def test_exports_and_metrics_need_a_token_allowed_by_rbac(
    operator: Operator, live: Live, api_client: client.ApiClient, namespace: str,
    other_namespace: str,
) -> None:  # fmt: skip
    pricing = create_pricing(api_client, live, "auth")
    _report(api_client, live, namespace, pricing)
    _report(api_client, live, other_namespace, pricing)
    alice = _user(api_client, namespace, "alice")  # may read reports in her namespace only
    _grant(api_client, namespace, "alice", READ_REPORTS)
    scraper = _user(api_client, namespace, "scraper")  # may read /metrics only
    _grant(api_client, namespace, "scraper", READ_METRICS)
    mine, theirs = f"/reports/{namespace}/usage", f"/reports/{other_namespace}/usage"

    # Probes stay open; everything else needs a valid token.
    assert operator.get("/healthz", token="")[0] == 200
    for path in ("/metrics", f"{mine}/current.json", "/nothing-here"):
        assert operator.get(path, token="")[0] == 401
        assert operator.get(path, token="not-a-token")[0] == 401

    # Alice reads her namespace's report, in every format, and nothing else.
    code, body = operator.get(f"{mine}/current.json", token=alice)
    assert code == 200
    assert f'"report": "{namespace}/usage"' in body
    assert operator.get(f"{mine}/current.csv", token=alice)[0] == 200
    assert operator.get(f"{mine}/current.focus", token=alice)[0] == 200
    code, page = operator.get(f"{mine}/current.html", token=alice)  # the statement
    assert code == 200
    assert "AI usage statement" in page
    code, body = operator.get(f"{theirs}/current.json", token=alice)
    assert code == 403
    assert operator.get(f"{theirs}/current.html?team=unassigned", token=alice)[0] == 403
    assert f"system:serviceaccount:{namespace}:alice may not get" in body
    assert operator.get("/metrics", token=alice)[0] == 403

    # The scraper reads /metrics and no report.
    code, exposition = operator.get("/metrics", token=scraper)
    assert code == 200
    assert "chargeback_report_tokens" in exposition
    assert operator.get(f"{mine}/current.json", token=scraper)[0] == 403

    # The administrator reads both namespaces.
    assert operator.get(f"{theirs}/current.json")[0] == 200


class _Store:
    def current(self, key: str) -> Any:
        return None

    def final(self, key: str, period_start_ms: int) -> Any:
        return None

    def statement(self, key: str, period_start_ms: int | None, team: str | None) -> Any:
        return None


def test_tls_only_with_the_serving_certificate(
    api_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    ca = pki.make_ca(tmp_path)
    serving = pki.make_serving_cert(ca, tmp_path, "chargeback-operator")
    port = free_port()
    server = serve(port, _Store(), guard=KubernetesAuth(api_client),
                   tls=(serving.cert, serving.key), host="127.0.0.1")  # fmt: skip
    try:
        context = ssl.create_default_context(cafile=str(ca.cert))
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=10,
                                    context=context) as response:  # fmt: skip
            assert response.status == 200
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", timeout=10,
                                   context=context)  # fmt: skip
        assert denied.value.code == 401
        # Plain HTTP gets no answer from a TLS endpoint.
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            http_get(f"http://127.0.0.1:{port}/healthz")
        # A slow client's handshake does not block the others (it runs on the handler thread).
        idle = threading.Thread(target=_connect_and_wait, args=(port,), daemon=True)
        idle.start()
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=10,
                                    context=context) as response:  # fmt: skip
            assert response.status == 200
    finally:
        server.shutdown()
        server.server_close()


def _connect_and_wait(port: int) -> None:
    """Open a connection and say nothing (no TLS handshake) until the server gives up."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, suppress(OSError):
        sock.recv(1)
