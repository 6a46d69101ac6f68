"""The operator against the real API server and a Prometheus whose history ends now."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from chargeback.app.settings import OperatorSettings
from chargeback.handlers.operator import run_operator
from chargeback.testing.kube import ClusterAccess
from chargeback.testing.process import free_port
from tests.conftest import Live

GROUP, VERSION = "chargeback.dev", "v1alpha1"


def local_zone_near_midday() -> str:
    """An Etc/GMT zone where it is now between 12:00 and 13:00: day edges far from now."""
    hour = dt.datetime.now(dt.UTC).hour
    offset = (12 - hour + 12) % 24 - 12  # -12..11
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


@dataclass
class Operator:
    settings: OperatorSettings
    metrics_url: str
    ledger_dsn: str
    token: str
    """A token allowed everything (the cluster admin's), for the guarded endpoint."""
    stop: Callable[[], None] = lambda: None
    """Stop this operator (as a pod ends); the fixture stops the others at teardown."""

    def get(self, path: str, token: str | None = None) -> tuple[int, str]:
        """GET ``path`` from the operator's endpoint with ``token`` (default: the admin's)."""
        return http_get(f"{self.metrics_url}{path}", self.token if token is None else token)


def http_get(url: str, token: str = "") -> tuple[int, str]:
    """Status and body of a GET, with a bearer token when one is given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


OperatorFactory = Callable[..., "Operator"]


@pytest.fixture
def operator_factory(
    live: Live, cluster: ClusterAccess, chargeback_crds: None, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[OperatorFactory]:  # fmt: skip
    """Start operators as `chargeback run` runs them, in threads: settings from the environment
    (the test's Prometheus, a fresh ledger, 3 s refresh), overridden by keyword arguments."""
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    started: list[tuple[threading.Thread, threading.Event, list[BaseException]]] = []

    def start(clock: Callable[[], int] | None = None, **overrides: Any) -> Operator:
        port = free_port()
        dsn = f"sqlite:///{tmp_path / f'ledger{len(started)}.db'}"
        settings = OperatorSettings(**{
            "prometheus_url": live.prometheus.url, "prometheus_token_file": "",
            "prometheus_ca_file": "", "ledger": dsn, "refresh_seconds": 3.0,
            "metrics_port": port, **overrides,
        })  # fmt: skip
        stop, failures = threading.Event(), []

        def operate() -> None:
            try:
                run_operator(settings, stop_flag=stop, clock=clock)
            except BaseException as exc:  # reported by the fixture below
                failures.append(exc)

        thread = threading.Thread(target=operate, name="operator", daemon=True)
        thread.start()
        started.append((thread, stop, failures))

        def halt() -> None:
            stop.set()
            thread.join(timeout=60)
            assert not thread.is_alive(), "the operator did not stop within 60 s"

        return Operator(settings, f"http://127.0.0.1:{settings.metrics_port}",
                        settings.ledger_dsn, cluster.admin_token, halt)  # fmt: skip

    yield start
    for _, stop, _ in started:
        stop.set()
    for thread, _, failures in started:
        thread.join(timeout=60)
        assert not thread.is_alive(), "an operator did not stop within 60 s"
        assert failures == []


@pytest.fixture
def operator(operator_factory: OperatorFactory) -> Operator:
    """One operator on the live Prometheus, as `chargeback run` would run with these settings."""
    return operator_factory()


def wait_for(predicate: Callable[[], Any], timeout: float = 90.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what or predicate}: last value {last!r}")


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in obj.get("status", {}).get("conditions", []):
        if cond["type"] == kind:
            return dict(cond)
    return {}


def get_report(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "usagereports", name
    )
    return obj


def wait_ready(api: client.ApiClient, namespace: str, name: str, timeout: float = 120.0) -> Any:
    """The report once it is Ready with its exports written."""
    return wait_for(
        lambda: (
            (r := get_report(api, namespace, name))
            and condition(r, "Ready").get("status") == "True"
            and r.get("status", {}).get("exports")
            and r
        ),
        timeout=timeout,
        what=f"UsageReport {namespace}/{name} Ready",
    )


def exported_document(api: client.ApiClient, namespace: str, report: dict[str, Any]) -> Any:
    """The report document (JSON) of the report's current export ConfigMap."""
    export = client.CoreV1Api(api).read_namespaced_config_map(
        report["status"]["exports"][0], namespace
    )
    return json.loads(export.data["report.json"])


def foreign_crd(group: str, version: str, kind: str, plural: str) -> dict[str, Any]:
    """A namespaced CRD of another project (schema left open): its API exists, as on a cluster
    where that project is installed."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [{"name": version, "served": True, "storage": True, "schema": {
                "openAPIV3Schema": {"type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True}}}],
        },
    }  # fmt: skip
