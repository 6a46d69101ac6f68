"""Operator settings: one typed model, read once from flags and ``CHARGEBACK_*`` variables.

`chargeback run` turns each flag into a field of :class:`OperatorSettings` (every flag carries
the environment variable the Helm chart sets); the test platform and ``chargeback report``
build the same model. These are operator settings, never tenant input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chargeback.adapters.dashboards import DashboardSettings
from chargeback.adapters.prometheus import PrometheusSettings
from chargeback.domain import buckets
from chargeback.domain.formats import ExportContext
from chargeback.domain.infra import InfraSource

THANOS_QUERIER = "https://thanos-querier.openshift-monitoring.svc:9091"
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_INFRA = InfraSource()
Duration = Annotated[str, Field(min_length=2, max_length=16)]


class OperatorSettings(BaseSettings):
    """Every setting of the operator, with defaults that suit OpenShift."""

    model_config = SettingsConfigDict(
        env_prefix="CHARGEBACK_",
        frozen=True,
        extra="ignore",
        populate_by_name=True,
        use_attribute_docstrings=True,
    )

    prometheus_url: str = THANOS_QUERIER
    """Prometheus, Thanos Querier or Mimir base URL."""
    prometheus_token_file: str = str(SA_DIR / "token")
    """Bearer token file, re-read per request; ignored when missing or empty."""
    prometheus_ca_file: str = str(SA_DIR / "service-ca.crt")
    """CA bundle for Prometheus TLS; ignored when missing or empty."""
    prometheus_insecure: bool = False
    """Skip TLS verification of Prometheus (testing only)."""
    prometheus_timeout_seconds: float = Field(60.0, gt=0, le=600)
    """How long one Prometheus request may take before it counts as failed (retried twice)."""
    data_dir: Path = Path("/var/lib/chargeback")
    """Where the default SQLite ledger lives."""
    ledger: str = ""
    """SQLAlchemy URL of the ledger; empty: SQLite in ``data_dir``."""
    bucket: Duration = "1h"
    """Collection bucket size."""
    refresh_seconds: float = Field(60.0, gt=0)
    """How often each report is refreshed (and collected)."""
    metrics_port: int = Field(8080, ge=0, le=65535)
    """Port of /metrics, /healthz and /reports."""
    http_auth: bool = True
    """Require a bearer token on /metrics and /reports, checked with TokenReview and
    SubjectAccessReview (get on the UsageReport; get on the /metrics URL)."""
    tls_cert_file: str = ""
    """Serve /metrics and /reports over TLS with this certificate (and --tls-key-file)."""
    tls_key_file: str = ""
    """The private key of --tls-cert-file."""
    admin_namespaces: str = ""
    """Namespaces (separated by spaces) whose reports see all usage without a UsageScope; the
    operator's own namespace always does."""
    pod_namespace: str = Field("", validation_alias="POD_NAMESPACE")
    """The operator's own namespace (set by Kubernetes in the chart's Deployment)."""
    history_days: int = Field(62, ge=0, le=3660)
    """How far back a newly referenced source's history starts."""
    namespaces: str = ""
    """Namespaces to watch, separated by spaces; empty: all."""
    billing_provider: Annotated[str, Field(min_length=1, max_length=200)] = "AI platform"
    """Who makes the models available, as finance exports name it (FOCUS ProviderName)."""
    billing_invoice_issuer: Annotated[str, Field(min_length=1, max_length=200)] = "AI platform"
    """Who charges for the usage (FOCUS InvoiceIssuerName)."""
    billing_host_provider: Annotated[str, Field(min_length=1, max_length=200)] = "Red Hat OpenShift"
    """Where the models run (FOCUS HostProviderName)."""
    billing_service: Annotated[str, Field(min_length=1, max_length=200)] = "AI model inference"
    """The service charged (FOCUS ServiceName)."""
    gpu_costs: bool = True
    """Collect GPU-hours per model for cost-to-value."""
    gpu_resolution: Duration = "30s"
    """Integration step of GPU usage (the kube-state-metrics scrape interval)."""
    gpu_model_label: str = _INFRA.model_label
    """kube_pod_labels label naming the model a serving pod serves."""
    gpu_product_label: str = _INFRA.product_label
    """kube_node_labels label naming the node's GPU product."""
    gpu_utilization_metric: str = _INFRA.utilization_metric
    """DCGM metric of GPU utilisation percent."""
    gpu_query: str = ""
    """Override: PromQL of GPUs allocated by model and product."""
    gpu_utilization_query: str = ""
    """Override: PromQL of per-GPU utilisation percent labelled by model."""
    dashboard_namespace: str = ""
    """Where dashboard ConfigMaps go; default: the operator's own namespace."""
    dashboard_label: str = "grafana_dashboard=1"
    """Label (key=value) the Grafana sidecar looks for."""
    dashboard_folder: str = "Chargeback"
    """Grafana folder of the dashboards."""
    grafana_operator: str = Field("auto", pattern="^(auto|on|off)$")
    """Make GrafanaDashboard objects: auto (when the CRD exists), on or off."""
    grafana_instance_selector: str = "dashboards=grafana"
    """Label (key=value) of the Grafana instances grafana-operator should load dashboards into."""
    dashboard_kinds: str = Field("both", pattern="^(grafana|perses|both)$")
    """Dashboards to make: grafana (ConfigMaps, GrafanaDashboards), perses (PersesDashboards for
    the OpenShift console, where that CRD exists) or both."""

    @field_validator("bucket", "gpu_resolution")
    @classmethod
    def _duration(cls, value: str) -> str:
        buckets.duration_ms(value)
        return value

    @field_validator("dashboard_label", "grafana_instance_selector")
    @classmethod
    def _pair(cls, value: str) -> str:
        _pair(value)
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> OperatorSettings:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file go together: set both or neither")
        return self

    @property
    def tls(self) -> tuple[Path, Path] | None:
        """The serving certificate and key, when TLS is configured."""
        if not self.tls_cert_file:
            return None
        return Path(self.tls_cert_file), Path(self.tls_key_file)

    @property
    def bucket_ms(self) -> int:
        """The bucket size in milliseconds."""
        return buckets.duration_ms(self.bucket)

    @property
    def ledger_dsn(self) -> str:
        """The ledger's SQLAlchemy URL."""
        return self.ledger or f"sqlite:///{self.data_dir / 'ledger.db'}"

    @property
    def unrestricted_namespaces(self) -> frozenset[str]:
        """Namespaces whose reports see everything: the operator's own and the admins'."""
        return frozenset([*self.admin_namespaces.split(), *filter(None, [self.pod_namespace])])

    @property
    def watched_namespaces(self) -> list[str]:
        """The namespaces to watch; empty: the whole cluster."""
        return self.namespaces.split()

    def prometheus(self) -> PrometheusSettings:
        """How to reach Prometheus (credential files only where they exist)."""
        return PrometheusSettings(
            url=self.prometheus_url,
            token_file=_existing(self.prometheus_token_file),
            ca_file=_existing(self.prometheus_ca_file),
            verify_tls=not self.prometheus_insecure,
            timeout_s=self.prometheus_timeout_seconds,
        )

    def export_context(self) -> ExportContext:
        """The names finance exports carry."""
        return ExportContext(provider=self.billing_provider,
                             invoice_issuer=self.billing_invoice_issuer,
                             host_provider=self.billing_host_provider,
                             service=self.billing_service)  # fmt: skip

    def infrastructure(self) -> InfraSource | None:
        """Where GPU usage comes from; None when GPU costs are switched off."""
        if not self.gpu_costs:
            return None
        return InfraSource(
            model_label=self.gpu_model_label,
            product_label=self.gpu_product_label,
            utilization_metric=self.gpu_utilization_metric,
            resolution_ms=buckets.duration_ms(self.gpu_resolution),
            gpu_query=self.gpu_query,
            utilization_query=self.gpu_utilization_query,
        )

    def dashboards(self) -> DashboardSettings:
        """Where and how dashboards are provisioned."""
        return DashboardSettings(
            # Not an alias of POD_NAMESPACE: two fields reading one variable lost it for the
            # other (pod_namespace came out empty whenever this one was set).
            namespace=self.dashboard_namespace or self.pod_namespace or "default",
            label=_pair(self.dashboard_label),
            folder=self.dashboard_folder,
            grafana_operator=self.grafana_operator,
            instance_selector=_pair(self.grafana_instance_selector),
            kinds=self.dashboard_kinds,
        )


def _existing(path: str) -> Path | None:
    return Path(path) if path and Path(path).exists() else None


def _pair(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    if not key or not value:
        raise ValueError(f"expected key=value, got {text!r}")
    return key, value
