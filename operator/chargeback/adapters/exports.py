"""Exports as ConfigMaps: the full document of each period in every format, owned by its report.

Each registered format (``domain/formats``) is one key, ``report.<format>``. A ConfigMap holds
at most 1 MiB, so large documents are split into numbered parts (`<name>-<period>-<n>`), each
below the limit; readers concatenate a key's parts in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from chargeback.api.common import API_VERSION
from chargeback.domain.names import LABEL_VALUE, fit

SHARD_BYTES = 900_000
MANAGED_BY = {"app.kubernetes.io/managed-by": "chargeback-operator"}
REPORT_LABEL = "chargeback.dev/report"


@dataclass(frozen=True)
class Owner:
    """The UsageReport that owns the exports."""

    namespace: str
    name: str
    uid: str


def _shards(text: str) -> list[str]:
    data = text.encode()
    pieces: list[str] = []
    start = 0
    while start < len(data) or not pieces:
        end = min(len(data), start + SHARD_BYTES)
        # Never split a UTF-8 character.
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end -= 1
        pieces.append(data[start:end].decode())
        start = end
    return pieces


def export_name(owner: Owner, period_start: str) -> str:
    """Stable ConfigMap name of a period's export."""
    stamp = period_start.replace("-", "").replace(":", "").lower().rstrip("z")
    return f"{fit(owner.name, 40)}-{stamp}"


def write_export(
    api: client.ApiClient, owner: Owner, period_start: str, renditions: Mapping[str, str]
) -> list[str]:
    """Create or update the ConfigMaps of one period (ConfigMap key -> text); return their names."""
    core = client.CoreV1Api(api)
    base = export_name(owner, period_start)
    parts = {key: _shards(text) for key, text in renditions.items()}
    count = max(len(p) for p in parts.values())
    names = []
    for index in range(count):
        name = base if count == 1 else f"{base}-{index}"
        data = {key: shards[index] for key, shards in parts.items() if index < len(shards)}
        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name=name,
                namespace=owner.namespace,
                labels={**MANAGED_BY, REPORT_LABEL: fit(owner.name, LABEL_VALUE)},
                annotations={"chargeback.dev/period-start": period_start,
                             "chargeback.dev/part": f"{index + 1}/{count}"},
                owner_references=[client.V1OwnerReference(
                    api_version=API_VERSION, kind="UsageReport",
                    name=owner.name, uid=owner.uid, controller=True)],
            ),
            data=data,
        )  # fmt: skip
        _apply(core, owner.namespace, name, body)
        names.append(name)
    return names


def _apply(core: client.CoreV1Api, namespace: str, name: str, body: Any) -> None:
    try:
        current = core.read_namespaced_config_map(name, namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
        core.create_namespaced_config_map(namespace, body)
        return
    if current.data != body.data:
        core.replace_namespaced_config_map(name, namespace, body)
