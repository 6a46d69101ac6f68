"""kopf handlers: read the object, call the reconciler, write status. Nothing else.

Loaded by `chargeback run` (or `kopf run -m chargeback.handlers.operator`). Settings come from
CHARGEBACK_* environment variables (see services/reconcile.py: OperatorSettings.from_env).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any

import kopf

from chargeback.adapters import metrics
from chargeback.adapters.exports import Owner
from chargeback.adapters.httpserver import serve
from chargeback.adapters.kube import default_client, service_address
from chargeback.api.common import GROUP, VERSION
from chargeback.domain.conditions import status_changes
from chargeback.services.reconcile import OperatorSettings, Reconciler

REFRESH_SECONDS = float(os.environ.get("CHARGEBACK_REFRESH_SECONDS", "60"))


@kopf.on.startup()
def startup(
    *, settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Build the reconciler and start the metrics/exports HTTP server."""
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 90
    settings.networking.connect_timeout = 10
    # Our status schema is strict (pruned), so kopf keeps its progress in annotations.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="chargeback.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="chargeback.dev", key="last-handled-configuration"
    )
    operator_settings = OperatorSettings.from_env()
    memo.reconciler = Reconciler(operator_settings, default_client())
    memo.server = serve(operator_settings.metrics_port, memo.reconciler)
    logger.info("Started with Prometheus %s and ledger %s", operator_settings.prometheus.url,
                operator_settings.ledger_dsn.split("@")[-1])  # fmt: skip


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster ServiceAccount, else $KUBECONFIG as it is now (kopf's own readers).

    In a pod, the API server is the address Kubernetes puts in the environment, as client-go and
    the kubernetes client (our adapters) use it; kopf alone would ask cluster DNS for
    kubernetes.default.svc, which a pod on the host network or with its own DNS may not resolve,
    and the operator would then talk to the API server through two different addresses.
    """
    info = kopf.login_with_service_account(**kwargs)
    if info is None:
        return kopf.login_with_kubeconfig(**kwargs)
    address = service_address()
    return dataclasses.replace(info, server=address) if address else info


@kopf.on.cleanup()
def cleanup(*, memo: kopf.Memo, **_: Any) -> None:
    """Stop the HTTP server and close connections."""
    memo.server.shutdown()
    memo.reconciler.close()


@kopf.on.resume(GROUP, VERSION, "tierpricings")
@kopf.on.create(GROUP, VERSION, "tierpricings")
@kopf.on.update(GROUP, VERSION, "tierpricings")
def reconcile_pricing(
    *, name: str, spec: kopf.Spec, meta: kopf.Meta, status: kopf.Status, patch: kopf.Patch,
    memo: kopf.Memo, **_: Any,
) -> None:  # fmt: skip
    """Record the price version and report it in status."""
    with metrics.reconcile_seconds.labels("TierPricing").time():
        result = memo.reconciler.reconcile_pricing(
            name, dict(spec), meta.get("generation", 0), dict(status)
        )
    patch.status.update(status_changes(status, result))
    metrics.reconciles.labels("TierPricing", "ok").inc()


@kopf.on.resume(GROUP, VERSION, "usagereports")
@kopf.on.create(GROUP, VERSION, "usagereports")
@kopf.on.update(GROUP, VERSION, "usagereports")
@kopf.timer(GROUP, VERSION, "usagereports", interval=REFRESH_SECONDS, initial_delay=5)
def reconcile_report(
    *, name: str, namespace: str | None, uid: str, spec: kopf.Spec, meta: kopf.Meta,
    status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo, body: kopf.Body, **_: Any,
) -> None:  # fmt: skip
    """Refresh the report's open period, finalise finished ones, write status and exports."""
    started = time.monotonic()
    owner = Owner(namespace or "", name, uid)
    outcome = memo.reconciler.reconcile_report(owner, dict(spec), meta.get("generation", 0),
                                               dict(status))  # fmt: skip
    patch.status.update(status_changes(status, outcome.status))
    for kind, reason, message in outcome.events:
        if kind == "Warning":
            kopf.warn(body, reason=reason, message=message)
        else:
            kopf.info(body, reason=reason, message=message)
    ready: dict[str, Any] = next(
        (c for c in outcome.status["conditions"] if c["type"] == "Ready"), {}
    )
    result = "ok" if ready.get("status") == "True" else "error"
    metrics.reconciles.labels("UsageReport", result).inc()
    metrics.reconcile_seconds.labels("UsageReport").observe(time.monotonic() - started)


@kopf.on.delete(GROUP, VERSION, "usagereports", optional=True)
def forget_report(*, name: str, namespace: str | None, **_: Any) -> None:
    """Exports go with their owner (ownerReferences); finalised documents stay in the ledger."""
    metrics.forget_report(namespace or "", name)


def run_operator(namespaces: list[str], liveness_port: int) -> None:
    """Run kopf with these handlers until stopped (one replica by design)."""
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=f"http://0.0.0.0:{liveness_port}/healthz",
    )
