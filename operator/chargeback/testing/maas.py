"""MaaS v0.2+ for tests: its counters from the simulated traffic, and MaaSSubscription objects.

The CustomResourceDefinition is written from the facts of ../shared/REFERENCE.md section 6
(``maas.opendatahub.io/v1alpha1``, namespaced): ``spec.modelRefs[]`` with ``name``,
``namespace``, ``billingRate.perToken`` (a decimal string) and ``tokenRateLimits``;
``spec.owner``, ``spec.priority``, ``spec.tokenMetadata``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

from chargeback.domain.subscriptions import GROUP, PLURAL, VERSION
from chargeback.testing.gateways import summed
from chargeback.testing.simulator import Simulation

COST_CENTER = {"free": "cc-100", "premium": "cc-200", "enterprise": "cc-200"}
"""The cost centre set on each simulated tier's subscription."""


def maas_v02(sim: Simulation, *, with_user: bool, cost_centres: bool = True) -> Iterator[str]:
    """The simulator's counters as MaaS v0.2 exports them, as OpenMetrics text.

    The tier becomes the subscription, with its cost centre and organisation. Without ``user``,
    Limitador keeps one counter per subscription and model (per replica): the users' counters
    summed, each carried at its last value until the replica restarts. ``cost_centres``: False
    for counters without ``cost_center`` (a telemetry policy that does not add it).
    """
    metric = sim.scenario.metric
    yield f"# TYPE {metric} unknown"
    restarts = defaultdict(list)
    for replica, t_ms in sim.scenario.restarts:
        restarts[replica].append(t_ms)
    merged: dict[tuple[int, str, str, str], list[list[tuple[int, int]]]] = defaultdict(list)
    for (replica, (user, tier, model)), points in sorted(sim.samples.items()):
        if model:
            merged[(replica, user if with_user else "", tier, model)].append(points)
    for (replica, user, tier, model), series in sorted(merged.items()):
        centre = f'cost_center="{COST_CENTER[tier]}",' if cost_centres else ""
        labels = (f'user="{user}",' if with_user else "") + (
            f'subscription="{tier}",{centre}organization_id="acme",'
            f'model="{model}",limitador_namespace="llm/{tier}-route",pod="limitador-{replica}"'
        )
        for t_ms, value in summed(series, restarts[replica]):
            yield f"{metric}{{{labels}}} {value} {t_ms / 1000:.3f}"
    yield "# EOF"


def subscription_crd() -> dict[str, Any]:
    """The MaaSSubscription CustomResourceDefinition (the fields chargeback reads, and more)."""
    model_ref = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "namespace": {"type": "string"},
            "billingRate": {"type": "object", "properties": {"perToken": {"type": "string"}}},
            "tokenRateLimits": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"limit": {"type": "integer"}, "window": {"type": "string"}},
                },
            },
        },
    }
    spec = {
        "type": "object",
        "properties": {
            "modelRefs": {"type": "array", "items": model_ref},
            "owner": {
                "type": "object",
                "properties": {
                    "groups": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                    },
                    "users": {"type": "array", "items": {"type": "string"}},
                },
            },
            "priority": {"type": "integer"},
            "tokenMetadata": {
                "type": "object",
                "properties": {
                    "costCenter": {"type": "string"},
                    "organizationId": {"type": "string"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": PLURAL,
                "singular": "maassubscription",
                "kind": "MaaSSubscription",
                "listKind": "MaaSSubscriptionList",
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": spec}}},
                }
            ],
        },
    }


def subscription(name: str, rates: Mapping[str, str], cost_center: str = "") -> dict[str, Any]:
    """A MaaSSubscription with a per-token billing rate for each model of ``rates``."""
    refs = [
        {
            "name": model,
            "namespace": "llm",
            "billingRate": {"perToken": rate},
            "tokenRateLimits": [{"limit": 100000, "window": "1m"}],
        }
        for model, rate in rates.items()
    ]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MaaSSubscription",
        "metadata": {"name": name},
        "spec": {
            "modelRefs": refs,
            "owner": {"groups": [{"name": f"{name}-users"}]},
            "priority": 10,
            "tokenMetadata": {"costCenter": cost_center, "organizationId": "acme"},
        },
    }
