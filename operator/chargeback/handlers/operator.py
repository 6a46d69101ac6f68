"""kopf handlers: read the object, call the composition root's reconcilers, write status.

:func:`run_operator` registers the handlers with the settings they need (the refresh interval of
the timer) in a registry of their own and runs kopf; the settings travel in kopf's memo. Failures
map to kopf's errors: a spec that cannot work is a ``PermanentError`` (retried when the object
changes), an outage a ``TemporaryError`` (retried after the refresh interval). The readable
condition is written to the status either way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

import kopf

from chargeback.api.common import GROUP, VERSION
from chargeback.app.root import (
    Operator,
    api_server_address,
    build_operator,
    kubernetes_client,
    now_ms,
)
from chargeback.app.settings import OperatorSettings
from chargeback.services import report_metrics
from chargeback.services.outcome import Failure, Outcome


class DigestDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's last-handled configuration as a digest, not a copy of the spec.

    The reconcilers compute everything from the current spec and never read kopf's diffs, so a
    digest tells kopf all it needs (whether the spec changed) in a few bytes. A copy of a large
    spec would overflow the 256 KiB annotation limit, and the object would never get a status.
    """

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        """The digest of what kopf would otherwise store whole."""
        essence = super().build(body=body, extra_fields=extra_fields)
        canonical = json.dumps(essence, sort_keys=True, separators=(",", ":"), default=str)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        return cast(kopf.BodyEssence, {"spec": {"sha256": digest}})


def startup(
    *, settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Build the object graph and start the metrics/exports HTTP server."""
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 60
    settings.watching.client_timeout = 90
    settings.networking.connect_timeout = 10
    # Our status schema is strict (pruned), so kopf keeps its progress in annotations.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="chargeback.dev")
    settings.persistence.diffbase_storage = DigestDiffBaseStorage(
        prefix="chargeback.dev", key="last-handled-configuration"
    )
    config: OperatorSettings = memo.settings
    memo.operator = build_operator(config, kubernetes_client(), memo.clock or now_ms)
    memo.operator.serve()
    logger.info("Started with Prometheus %s and ledger %s", config.prometheus_url,
                config.ledger_dsn.split("@")[-1])  # fmt: skip


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
    address = api_server_address()
    return dataclasses.replace(info, server=address) if address else info


def cleanup(*, memo: kopf.Memo, **_: Any) -> None:
    """Stop the HTTP server and close connections."""
    operator: Operator | None = getattr(memo, "operator", None)
    if operator is not None:
        operator.close()


def reconcile_pricing(
    *, name: str, spec: kopf.Spec, meta: kopf.Meta, status: kopf.Status, patch: kopf.Patch,
    memo: kopf.Memo, body: kopf.Body, **_: Any,
) -> None:  # fmt: skip
    """Record the price version and report it in status."""
    operator: Operator = memo.operator
    started = time.monotonic()
    outcome = operator.pricing.reconcile(name, dict(spec), meta.get("generation", 0), dict(status))
    patch.status.update(outcome.status)
    _post(body, outcome)
    report_metrics.reconciled("TierPricing", outcome.ready, time.monotonic() - started)
    _raise_failure(outcome, operator.settings.refresh_seconds)


def reconcile_report(
    *, name: str, namespace: str | None, uid: str, spec: kopf.Spec, meta: kopf.Meta,
    status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo, body: kopf.Body, **_: Any,
) -> None:  # fmt: skip
    """Refresh the report's open period, finalise finished ones, write status and exports."""
    operator: Operator = memo.operator
    started = time.monotonic()
    outcome = operator.reports.reconcile(namespace or "", name, uid, spec=dict(spec),
                                         generation=meta.get("generation", 0),
                                         status=dict(status))  # fmt: skip
    patch.status.update(outcome.status)
    _post(body, outcome)
    report_metrics.reconciled("UsageReport", outcome.ready, time.monotonic() - started)
    _raise_failure(outcome, operator.settings.refresh_seconds)


def reconcile_scope(
    *, spec: kopf.Spec, meta: kopf.Meta, status: kopf.Status, patch: kopf.Patch,
    memo: kopf.Memo, **_: Any,
) -> None:  # fmt: skip
    """Say in the scope's status whether it can grant what it says."""
    operator: Operator = memo.operator
    started = time.monotonic()
    outcome = operator.scopes.reconcile(dict(spec), meta.get("generation", 0), dict(status))
    patch.status.update(outcome.status)
    report_metrics.reconciled("UsageScope", outcome.ready, time.monotonic() - started)
    _raise_failure(outcome, operator.settings.refresh_seconds)


def forget_report(*, name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Exports go with their owner (ownerReferences); finalised documents stay in the ledger."""
    report_metrics.forget(namespace or "", name)
    operator: Operator | None = getattr(memo, "operator", None)
    if operator is not None:
        operator.reports.forget(f"{namespace or ''}/{name}")


def _post(body: kopf.Body, outcome: Outcome) -> None:
    """Post the outcome's events on the object."""
    for event in outcome.events:
        post = kopf.warn if event.warning else kopf.info
        post(body, reason=str(event.reason), message=event.message)


def _raise_failure(outcome: Outcome, retry_s: float) -> None:
    """Tell kopf how the reconciliation failed (the status already says why).

    The same failure again is not raised again: kopf would log and post it on every refresh.
    """
    if outcome.repeated:
        return
    if outcome.failure is Failure.PERMANENT:
        raise kopf.PermanentError(outcome.message)
    if outcome.failure is Failure.TEMPORARY:
        raise kopf.TemporaryError(outcome.message, delay=retry_s)


def registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    """The handlers, registered with the settings they need."""
    reg = kopf.OperatorRegistry()
    kopf.on.startup(registry=reg)(startup)
    kopf.on.login(registry=reg)(login)
    kopf.on.cleanup(registry=reg)(cleanup)
    for plural, handler in (("tierpricings", reconcile_pricing),
                            ("usagereports", reconcile_report),
                            ("usagescopes", reconcile_scope)):  # fmt: skip
        kopf.on.resume(GROUP, VERSION, plural, registry=reg)(handler)
        kopf.on.create(GROUP, VERSION, plural, registry=reg)(handler)
        kopf.on.update(GROUP, VERSION, plural, registry=reg)(handler)
    kopf.timer(GROUP, VERSION, "usagereports", interval=settings.refresh_seconds,
               initial_delay=5, registry=reg)(reconcile_report)  # fmt: skip
    # Rates imported from MaaSSubscriptions change without the TierPricing changing.
    kopf.timer(GROUP, VERSION, "tierpricings", interval=settings.refresh_seconds,
               initial_delay=5, registry=reg)(reconcile_pricing)  # fmt: skip
    kopf.on.delete(GROUP, VERSION, "usagereports", optional=True, registry=reg)(forget_report)
    return reg


def run_operator(
    settings: OperatorSettings,
    *,
    liveness_port: int | None = None,
    stop_flag: threading.Event | None = None,
    clock: Callable[[], int] | None = None,
) -> None:
    """Run kopf with these handlers until stopped (one replica by design).

    ``clock``: epoch milliseconds the reconcilers take as now (tests travel in time with it).
    """
    namespaces = settings.watched_namespaces
    # kopf names this process from its login name unless POD_ID is set; a container's arbitrary
    # UID (Kubernetes runAsUser, OpenShift's restricted SCC) has no passwd entry, and the lookup
    # would end the operator at start-up. The host name is the pod's name in a pod.
    os.environ.setdefault("POD_ID", socket.gethostname())
    kopf.run(
        registry=registry(settings),
        memo=kopf.Memo(settings=settings, clock=clock),
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None,
        stop_flag=stop_flag,
    )
