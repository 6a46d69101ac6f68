"""The Helm chart, proven against the real API server: lint, golden rendering, Pod Security
"restricted", upgrade/uninstall, schema errors, and least-privilege RBAC that runs the operator
through a full scenario behind a TLS proxy that plays Thanos Querier."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chargeback.domain import subscriptions as maas
from chargeback.testing import pki
from chargeback.testing.authproxy import PrometheusProxy, write_token
from chargeback.testing.kube import ClusterAccess, apply_crds, write_kubeconfig
from chargeback.testing.maas import subscription, subscription_crd
from chargeback.testing.process import ManagedProcess, free_port
from chargeback.testing.tools import binary
from tests.conftest import ROOT
from tests.e2e.conftest import GROUP, VERSION, Live, condition, get_report, wait_for
from tests.e2e.test_operator import PRICES, _iso, pricing_body, report_body

CHART = ROOT / "charts" / "chargeback-operator"
GOLDEN = ROOT / "tests" / "golden" / "chart.yaml"


def helm(cluster: ClusterAccess | None, *args: str) -> subprocess.CompletedProcess[str]:
    config = ["--kubeconfig", str(cluster.kubeconfig)] if cluster else []
    return subprocess.run([str(binary("helm")), *config, *args], capture_output=True, text=True,
                          check=False, timeout=120)  # fmt: skip


def test_chart_lints_and_renders_as_the_golden_file() -> None:
    lint = helm(None, "lint", str(CHART))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    rendered = helm(None, "template", "chargeback", str(CHART), "-n", "chargeback-system")
    assert rendered.returncode == 0, rendered.stderr
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(rendered.stdout)
    assert rendered.stdout == GOLDEN.read_text(), "chart output changed: run `make golden`"


def test_chart_crds_are_the_generated_ones() -> None:
    for crd in (ROOT / "crds").glob("*.yaml"):
        assert (CHART / "crds" / crd.name).read_text() == crd.read_text(), "run `make crds`"


def test_bad_values_are_refused_with_the_field_named() -> None:
    cases = [("bucket=2hours", "/bucket"), ("refreshSeconds=1", "/refreshSeconds"),
             ("prometheus.url=thanos", "/prometheus/url"),
             ("dashboards.grafanaOperator=maybe", "/dashboards/grafanaOperator")]  # fmt: skip
    for setting, field in cases:
        result = helm(None, "template", "x", str(CHART), "--set", setting)
        assert result.returncode != 0, setting
        assert field in result.stderr, result.stderr


@pytest.fixture(scope="session")
def packaged_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`helm package`: the archive users install, not the folder."""
    out = tmp_path_factory.mktemp("chart")
    packaged = helm(None, "package", str(CHART), "-d", str(out))
    assert packaged.returncode == 0, packaged.stderr
    (archive,) = out.glob("chargeback-operator-*.tgz")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"chargeback-operator/values.schema.json",
            "chargeback-operator/templates/deployment.yaml"} <= names  # fmt: skip
    assert {
        f"chargeback-operator/crds/{crd.name}" for crd in (ROOT / "crds").glob("*.yaml")
    } <= names
    return archive


@pytest.fixture
def release(
    cluster: ClusterAccess, api_client: client.ApiClient, chargeback_crds: None,
    packaged_chart: Path,
) -> Iterator[tuple[str, str]]:  # fmt: skip
    namespace = f"cb-{uuid.uuid4().hex[:6]}"
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    client.CoreV1Api(api_client).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace, labels=labels))
    )
    name = f"cb{uuid.uuid4().hex[:6]}"
    installed = helm(cluster, "install", name, str(packaged_chart), "-n", namespace,
                     "--set", "prometheus.url=https://thanos.invalid:9091")  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    yield name, namespace
    helm(cluster, "uninstall", name, "-n", namespace)
    client.CoreV1Api(api_client).delete_namespace(namespace)


def test_install_passes_pod_security_restricted_then_upgrades_and_uninstalls(
    cluster: ClusterAccess, api_client: client.ApiClient, release: tuple[str, str],
    packaged_chart: Path,
) -> None:  # fmt: skip
    name, namespace = release
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    deployment = apps.read_namespaced_deployment(name, namespace)
    template = deployment.spec.template
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="probe", labels=template.metadata.labels),
                       spec=template.spec)  # fmt: skip
    core.create_namespaced_pod(namespace, pod, dry_run="All")  # admitted under "restricted"
    pod.spec.containers[0].security_context.allow_privilege_escalation = True
    with pytest.raises(ApiException) as err:  # and the check is real: a sloppier pod is refused
        core.create_namespaced_pod(namespace, pod, dry_run="All")
    assert "allowPrivilegeEscalation" in json.loads(err.value.body)["message"]

    upgraded = helm(cluster, "upgrade", name, str(packaged_chart), "-n", namespace,
                    "--reuse-values",
                    "--set", "refreshSeconds=30")  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stderr
    env = {e.name: e.value for e in apps.read_namespaced_deployment(name, namespace)
           .spec.template.spec.containers[0].env}  # fmt: skip
    assert env["CHARGEBACK_REFRESH_SECONDS"] == "30"
    removed = helm(cluster, "uninstall", name, "-n", namespace)
    assert removed.returncode == 0, removed.stderr
    with pytest.raises(ApiException):
        apps.read_namespaced_deployment(name, namespace)


def service_account_kubeconfig(api: client.ApiClient, cluster: ClusterAccess, name: str,
                               namespace: str, path: Path) -> Path:  # fmt: skip
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    token = (
        client.CoreV1Api(api)
        .create_namespaced_service_account_token(name, namespace, request)
        .status.token
    )
    return write_kubeconfig(path, cluster.server, cluster.ca_file, token, name)


def test_operator_runs_with_the_charts_service_account_only(
    cluster: ClusterAccess, api_client: client.ApiClient, release: tuple[str, str], live: Live,
    namespace: str, tmp_path: Path,
) -> None:  # fmt: skip
    name, system = release
    kubeconfig = service_account_kubeconfig(api_client, cluster, name, system, tmp_path / "sa")
    # Thanos Querier: TLS with its own CA and a bearer token, as the chart configures it.
    ca = pki.make_ca(tmp_path, "service-ca")
    serving = pki.make_serving_cert(ca, tmp_path, "thanos")
    token_file = write_token(tmp_path / "token", "sa-token-1")
    objects = client.CustomObjectsApi(api_client)
    pricing = f"rbac-{uuid.uuid4().hex[:6]}"
    # MaaS subscriptions' rates are read with the chart's rights too.
    apply_crds(api_client, [subscription_crd()])
    gold = subscription("gold", {"granite-3-8b": "0.000002"})
    objects.create_namespaced_custom_object(maas.GROUP, maas.VERSION, namespace, maas.PLURAL, gold)
    with PrometheusProxy(live.prometheus.url, serving, "sa-token-1") as proxy:
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": system}

        def start(ca_file: Path) -> ManagedProcess:
            process = ManagedProcess("operator", [
                sys.executable, "-m", "chargeback", "run", "--prometheus-url", proxy.url,
                "--token-file", str(token_file), "--ca-file", str(ca_file),
                "--ledger", f"sqlite:///{tmp_path / 'ledger.db'}", "--refresh-seconds", "2",
                "--metrics-port", str(free_port()), "--liveness-port", str(free_port()),
            ], tmp_path / "operator.log", env=env)  # fmt: skip
            process.start()
            return process

        operator = start(ca.cert)
        try:
            body = pricing_body(pricing, PRICES, _iso(live.start_ms))
            body["spec"]["maasSubscriptions"] = {"namespaces": [namespace]}
            objects.create_cluster_custom_object(GROUP, VERSION, "tierpricings", body)

            def imported() -> dict[str, Any]:
                found = objects.get_cluster_custom_object(GROUP, VERSION, "tierpricings", pricing)
                return condition(found, "PricesImported")

            taken = wait_for(lambda: imported().get("status") == "True" and imported(),
                             what="rates imported under the chart's RBAC")  # fmt: skip
            assert taken["message"] == "1 price from 1 MaaSSubscription"
            objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "usagereports",
                report_body("r", pricing, schedule={"interval": "daily"}))  # fmt: skip
            report = wait_for(lambda: (r := get_report(api_client, namespace, "r"))
                              and condition(r, "Ready").get("status") == "True" and r,
                              what="Ready under the chart's RBAC")  # fmt: skip
            assert report["status"]["exports"]
            wait_for(lambda: client.CoreV1Api(api_client).list_namespaced_config_map(
                system, label_selector=f"chargeback.dev/pricing={pricing}").items,
                what="dashboard ConfigMap")  # fmt: skip
            # The token rotates: still fine. A wrong token: a readable condition.
            proxy.token = "sa-token-2"
            write_token(token_file, "sa-token-2")
            time.sleep(5)
            assert (
                condition(get_report(api_client, namespace, "r"), "SourceAvailable")["status"]
                == "True"
            )
            write_token(token_file, "stale")

            def source() -> dict[str, Any]:
                return condition(get_report(api_client, namespace, "r"), "SourceAvailable")

            down = wait_for(lambda: source().get("status") == "False" and source(),
                            what="SourceAvailable=False")  # fmt: skip
            assert "rejected the credentials with HTTP 401" in down["message"]
            # A CA that did not sign Thanos' certificate: a readable condition too.
            operator.stop()
            write_token(token_file, "sa-token-2")
            operator = start(pki.make_ca(tmp_path, "wrong-ca").cert)
            wait_for(lambda: "TLS verification" in source().get("message", ""),
                     what="SourceAvailable=False for the wrong CA")  # fmt: skip
        finally:
            operator.stop()
    # Nothing the chart's RBAC refused: an RBAC denial says `... is forbidden: User "..." cannot
    # <verb> resource ...`. (Other 403s are not missing rights: writes into namespaces other
    # tests are deleting are refused because the namespace is terminating.)
    log = (tmp_path / "operator.log").read_text()
    refused = [line for line in log.splitlines() if RBAC_DENIAL.search(line)]
    assert refused == [], log[-3000:]


RBAC_DENIAL = re.compile(r"forbidden: User .{1,200} cannot ", re.IGNORECASE)


def rules_of(cluster: ClusterAccess, kubeconfig: Path, namespace: str) -> dict[str, str]:
    """resource -> verbs the kubeconfig's user may use in ``namespace`` (SelfSubjectRulesReview)."""
    token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    config = client.Configuration()
    config.host, config.ssl_ca_cert = cluster.server, str(cluster.ca_file)
    config.api_key = {"authorization": f"Bearer {token}"}
    spec = client.V1SelfSubjectRulesReviewSpec(namespace=namespace)
    with client.ApiClient(config) as sa_api:
        review = client.AuthorizationV1Api(sa_api).create_self_subject_rules_review(
            client.V1SelfSubjectRulesReview(spec=spec)
        )
    verbs: dict[str, set[str]] = {}
    for rule in review.status.resource_rules:
        for group in rule.api_groups or [""]:
            for resource in rule.resources or []:
                verbs.setdefault(f"{group or 'core'}/{resource}", set()).update(rule.verbs)
    return {resource: ",".join(sorted(v)) for resource, v in verbs.items()}


def test_service_account_can_do_exactly_what_the_operator_needs(
    cluster: ClusterAccess, api_client: client.ApiClient, release: tuple[str, str], tmp_path: Path
) -> None:
    name, system = release
    kubeconfig = service_account_kubeconfig(api_client, cluster, name, system, tmp_path / "sa")
    granted = {
        resource: verbs
        for resource, verbs in rules_of(cluster, kubeconfig, "default").items()
        # Every authenticated user may review their own access; that is not ours to grant.
        if not resource.startswith(("authorization.k8s.io/", "authentication.k8s.io/"))
    }
    assert granted == {
        "apiextensions.k8s.io/customresourcedefinitions": "list,watch",
        "chargeback.dev/tierpricings": "get,list,patch,watch",
        "chargeback.dev/tierpricings/status": "patch",
        "chargeback.dev/usagereports": "list,patch,watch",
        "chargeback.dev/usagereports/status": "patch",
        "chargeback.dev/usagescopes": "list,patch,watch",
        "chargeback.dev/usagescopes/status": "patch",
        "core/configmaps": "create,get,update",
        "core/namespaces": "get",
        "core/events": "create",
        "grafana.integreatly.org/grafanadashboards": "create,get",
        "monitoring.coreos.com/prometheusrules": "create,delete,get,update",
        "maas.opendatahub.io/maassubscriptions": "list",
        "perses.dev/persesdashboards": "create,get,update",
        "user.openshift.io/groups": "list",
    }
    subject = f"system:serviceaccount:{system}:{name}"
    authz = client.AuthorizationV1Api(api_client)
    for verb, resource in (("get", "secrets"), ("list", "secrets"), ("delete", "configmaps"),
                           ("create", "pods"), ("delete", "tierpricings")):  # fmt: skip
        attributes = client.V1ResourceAttributes(
            namespace="default", verb=verb, resource=resource,
            group="chargeback.dev" if resource == "tierpricings" else "",
        )  # fmt: skip
        spec = client.V1SubjectAccessReviewSpec(user=subject, resource_attributes=attributes)
        review = authz.create_subject_access_review(client.V1SubjectAccessReview(spec=spec))
        assert review.status.allowed is False, f"{verb} {resource}"
