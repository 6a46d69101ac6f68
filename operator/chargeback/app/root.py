"""The composition root: builds the object graph from settings, in one place.

``chargeback run`` (through the kopf handlers) gets an :class:`Operator`; ``chargeback report``
gets a :class:`ReportService` from :func:`report_service`. Tests build the same graph.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

from pydantic import ValidationError

from chargeback.adapters.httpserver import serve
from chargeback.adapters.kube import (
    default_client,
    list_custom_objects,
    namespace_labels,
    object_uid,
    openshift_groups,
    service_address,
    usage_scopes,
)
from chargeback.adapters.kube_auth import KubernetesAuth
from chargeback.adapters.ledger import Ledger, LedgerError
from chargeback.adapters.pricing_ledger import PricingLedger
from chargeback.adapters.prometheus import PrometheusClient, PrometheusSettings
from chargeback.adapters.ttl import TtlCache
from chargeback.api.base import problems
from chargeback.api.scope import UsageScopeSpec
from chargeback.app.settings import OperatorSettings
from chargeback.domain import subscriptions as maas
from chargeback.domain.formats import DEFAULT_CONTEXT, ExportContext
from chargeback.domain.infra import InfraSource
from chargeback.services.collect import Collector, CollectorSettings
from chargeback.services.dashboards import DashboardProvisioner
from chargeback.services.infra import InfraCollector
from chargeback.services.pricing import PricingReconciler
from chargeback.services.report import ReportService
from chargeback.services.scope import ScopeReconciler
from chargeback.services.usage_report import Tenancy, UsageReportReconciler

log = logging.getLogger(__name__)

CLUSTER_READS_TTL_S = 5.0
"""How long reports share what they read from the API server each refresh: the UsageScopes, a
namespace's labels, whether a TierPricing exists. A change applies within this plus a refresh."""


def scopes_of(items: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, UsageScopeSpec]]:
    """Valid UsageScopes by name.

    The API server validated them; a stored one that no longer validates grants nothing, and is
    logged.
    """
    valid = []
    for name, spec in items:
        try:
            valid.append((name, UsageScopeSpec.model_validate(spec)))
        except ValidationError as exc:
            log.warning("Ignored UsageScope %s: %s", name, problems(exc, "spec."))
    return valid


def now_ms() -> int:
    """The wall clock in epoch milliseconds."""
    return int(time.time() * 1000)


@dataclass
class Operator:
    """What the operator holds for its lifetime."""

    settings: OperatorSettings
    api: Any
    prometheus: PrometheusClient
    ledger: Ledger
    pricing: PricingReconciler
    reports: UsageReportReconciler
    scopes: ScopeReconciler
    server: ThreadingHTTPServer | None = None

    def serve(self) -> None:
        """Start the HTTP endpoint (metrics, health, exports), guarded unless switched off."""
        guard = KubernetesAuth(self.api) if self.settings.http_auth else None
        self.server = serve(self.settings.metrics_port, self.reports, guard=guard,
                            tls=self.settings.tls)  # fmt: skip

    def close(self) -> None:
        """Stop the endpoint and release connections."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        self.prometheus.close()
        self.ledger.close()


def kubernetes_client() -> Any:
    """The Kubernetes client of the operator: in-cluster, else $KUBECONFIG."""
    return default_client()


def api_server_address() -> str | None:
    """The API server's address as Kubernetes puts it in a pod's environment, if in a pod."""
    return service_address()


def report_service(
    prometheus: PrometheusClient,
    ledger: Ledger,
    bucket_ms: int,
    infra: InfraSource | None,
    context: ExportContext = DEFAULT_CONTEXT,
    *,
    plan_teams: Callable[[], Mapping[str, str]] | None = None,
) -> ReportService:
    """Collection, GPU usage and reports over one Prometheus and one ledger.

    ``plan_teams``: the team of each MaaS subscription (in a cluster). Raises ValueError when
    the bucket is not a multiple of the GPU resolution.
    """
    collector = Collector(prometheus, ledger, CollectorSettings(bucket_ms=bucket_ms))
    gpus = InfraCollector(prometheus, ledger, infra, bucket_ms) if infra else None
    return ReportService(collector, ledger, gpus, context, plan_teams)


def open_ledger(dsn: str) -> Ledger:
    """The ledger at ``dsn``; LedgerError says why it cannot be opened."""
    try:
        return Ledger(dsn)
    except LedgerError:
        raise
    except Exception as exc:
        raise LedgerError(f"cannot open the ledger {dsn}: {exc}") from exc


@contextmanager
def connected(
    prometheus: PrometheusSettings, dsn: str
) -> Iterator[tuple[PrometheusClient, Ledger]]:
    """A Prometheus client and a ledger for one command, closed afterwards."""
    ledger = open_ledger(dsn)
    client = PrometheusClient(prometheus)
    try:
        yield client, ledger
    finally:
        client.close()
        ledger.close()


@contextmanager
def reporting(
    prometheus: PrometheusSettings,
    dsn: str,
    bucket_ms: int,
    infra: InfraSource | None,
    context: ExportContext = DEFAULT_CONTEXT,
) -> Iterator[ReportService]:
    """A report service for one command; its connections are closed afterwards."""
    with connected(prometheus, dsn) as (client, ledger):
        yield report_service(client, ledger, bucket_ms, infra, context)


@contextmanager
def collecting(prometheus: PrometheusSettings, dsn: str, bucket_ms: int) -> Iterator[Collector]:
    """A collector for one command; its connections are closed afterwards."""
    with connected(prometheus, dsn) as (client, ledger):
        yield Collector(client, ledger, CollectorSettings(bucket_ms=bucket_ms))


def build_operator(
    settings: OperatorSettings, api: Any, clock: Callable[[], int] = now_ms
) -> Operator:
    """The operator's object graph (nothing started yet: see :meth:`Operator.serve`)."""
    unrestricted = sorted(settings.unrestricted_namespaces)
    log.info(
        "Reports in %s see all usage without a UsageScope",
        ", ".join(unrestricted) or "no namespace",
    )
    prometheus = PrometheusClient(settings.prometheus())
    ledger = Ledger(settings.ledger_dsn)
    infra = settings.infrastructure()

    # Every report asks these at every refresh; reports refreshed together share one answer.
    reads: TtlCache[Any] = TtlCache(CLUSTER_READS_TTL_S)

    def pricing_exists(name: str) -> bool:
        uid = reads.get(("tierpricing", name), lambda: object_uid(api, "tierpricings", name))
        return uid is not None

    def subscriptions(namespaces: tuple[str, ...]) -> list[dict[str, Any]] | None:
        return list_custom_objects(api, maas.GROUP, maas.VERSION, maas.PLURAL, namespaces)

    def plan_teams() -> dict[str, str]:
        teams: dict[str, str] = reads.get(
            "plan-teams", lambda: maas.plan_teams(subscriptions(()) or [])
        )
        return teams

    pricing = PricingReconciler(PricingLedger(ledger), clock, exists=pricing_exists,
                                subscriptions=subscriptions)  # fmt: skip
    reports = UsageReportReconciler(
        api=api,
        reports=report_service(
            prometheus,
            ledger,
            settings.bucket_ms,
            infra,
            settings.export_context(),
            plan_teams=plan_teams,
        ),
        prices=pricing,
        dashboards=DashboardProvisioner(api, settings.dashboards(), infra),
        groups=lambda: openshift_groups(api),
        tenancy=Tenancy(
            scopes=lambda: reads.get("usagescopes", lambda: scopes_of(usage_scopes(api))),
            namespace_labels=lambda name: reads.get(
                ("namespace", name), lambda: namespace_labels(api, name)
            ),
            unrestricted=settings.unrestricted_namespaces,
        ),
        history_days=settings.history_days,
        clock=clock,
    )
    return Operator(settings, api, prometheus, ledger, pricing, reports, ScopeReconciler(clock))
