"""The chargeback CRDs installed into the session's real API server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

ROOT = Path(__file__).resolve().parents[2]


def install_crds(api_client: client.ApiClient) -> None:
    """Apply every CRD in crds/ (create or replace) and wait until each is Established."""
    ext = client.ApiextensionsV1Api(api_client)
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        name = body["metadata"]["name"]
        try:
            current = ext.read_custom_resource_definition(name)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            ext.replace_custom_resource_definition(name, body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            ext.create_custom_resource_definition(body)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            crd = ext.read_custom_resource_definition(name)
            if any(c.type == "Established" and c.status == "True"
                   for c in crd.status.conditions or []):  # fmt: skip
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"CRD {name} not Established")


@pytest.fixture(scope="session")
def chargeback_crds(api_client: client.ApiClient) -> None:
    install_crds(api_client)
