"""What the commands share: reading manifests and times, Prometheus and GPU options, the ledger."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml
from pydantic import BaseModel, ValidationError
from rich.console import Console

from chargeback.adapters.kube import client_from_kubeconfig, openshift_groups
from chargeback.adapters.ledger import Ledger
from chargeback.adapters.prometheus import PrometheusClient, PrometheusSettings
from chargeback.api.base import problems
from chargeback.api.common import API_VERSION
from chargeback.api.pricing import TierPricingSpec
from chargeback.api.report import UsageReportSpec
from chargeback.api.source import SourceSpec
from chargeback.domain import buckets
from chargeback.domain.infra import InfraSource
from chargeback.domain.pricing import PriceBook, PriceVersion, spec_digest

console = Console(stderr=True)


def parse_time(value: str, option: str) -> int:
    """Epoch milliseconds of an ISO 8601 time with zone (or ``now``); errors name the option."""
    if value == "now":
        return buckets.to_ms(dt.datetime.now(dt.UTC))
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=option) from exc
    if moment.tzinfo is None:
        raise click.BadParameter(
            f"{value!r} has no time zone; write e.g. 2026-01-01T00:00:00Z", param_hint=option
        )
    return buckets.to_ms(moment)


def load_manifests(path: Path, kind: str, option: str) -> list[dict[str, Any]]:
    """The documents of ``kind`` in a YAML file, with errors naming the file and option."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint=option) from exc
    if not documents:
        raise click.BadParameter(f"{path} holds no {kind}", param_hint=option)
    for document in documents:
        if not isinstance(document, dict) or document.get("kind") != kind:
            found = document.get("kind") if isinstance(document, dict) else type(document).__name__
            raise click.BadParameter(
                f"{path}: expected kind {kind}, found {found}", param_hint=option
            )
        if document.get("apiVersion") != API_VERSION:
            raise click.BadParameter(
                f"{path}: apiVersion must be {API_VERSION}, not {document.get('apiVersion')}",
                param_hint=option,
            )
    return documents


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: Any, path: Path, option: str, prefix: str) -> M:
    """``data`` as ``model``, or a CLI error naming the file, the option and each bad field."""
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        raise click.BadParameter(f"{path}: {problems(exc, prefix)}", param_hint=option) from exc


def load_price_book(path: Path) -> tuple[str, PriceBook]:
    """A TierPricing file (one document per price version) as a price book."""
    versions = []
    names = set()
    for number, document in enumerate(load_manifests(path, "TierPricing", "--pricing"), 1):
        names.add((document.get("metadata") or {}).get("name", ""))
        spec = validated(TierPricingSpec, document.get("spec"), path, "--pricing", "spec.")
        effective = buckets.to_ms(spec.effective_from) if spec.effective_from else 0
        versions.append(PriceVersion(number, effective, spec, spec_digest(spec)))
    if len(names) != 1:
        raise click.BadParameter(
            f"{path}: all versions must name the same TierPricing", param_hint="--pricing"
        )
    try:
        return names.pop(), PriceBook(versions)
    except ValueError as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--pricing") from exc


def load_report(path: Path) -> tuple[str, UsageReportSpec, str]:
    """A UsageReport manifest: (namespace/name, spec, pricing name)."""
    (document,) = load_manifests(path, "UsageReport", "--report")[:1]
    metadata = document.get("metadata") or {}
    spec = validated(UsageReportSpec, document.get("spec"), path, "--report", "spec.")
    name = f"{metadata.get('namespace', 'default')}/{metadata.get('name', path.stem)}"
    return name, spec, spec.pricing_ref.name


def load_source(path: Path) -> SourceSpec:
    """A SourceSpec from a YAML file: a bare source, or a UsageReport manifest's spec.source."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="--source") from exc
    if isinstance(document, dict) and document.get("kind") == "UsageReport":
        document = (document.get("spec") or {}).get("source") or {}
    return validated(SourceSpec, document, path, "--source", "")


def prometheus_options(func: Any) -> Any:
    """Options that say how to reach Prometheus."""
    options = [
        click.option("--prometheus-url", required=True, envvar="CHARGEBACK_PROMETHEUS_URL",
                     help="Prometheus, Thanos Querier or Mimir base URL."),
        click.option("--token-file", type=click.Path(path_type=Path), default=None,
                     envvar="CHARGEBACK_PROMETHEUS_TOKEN_FILE",
                     help="Bearer token file, re-read for every request."),
        click.option("--ca-file", type=click.Path(exists=True, path_type=Path), default=None,
                     envvar="CHARGEBACK_PROMETHEUS_CA_FILE", help="CA bundle for TLS."),
        click.option("--insecure-skip-tls-verify", is_flag=True,
                     help="Do not verify the server certificate (testing only)."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def make_prometheus(
    url: str, token_file: Path | None, ca_file: Path | None, insecure: bool
) -> PrometheusClient:
    """A Prometheus client from CLI options."""
    return PrometheusClient(
        PrometheusSettings(url=url, token_file=token_file, ca_file=ca_file, verify_tls=not insecure)
    )


def infra_options(func: Any) -> Any:
    """Options that say where GPU allocation and utilisation come from (cost-to-value)."""
    defaults = InfraSource()
    options = [
        click.option("--gpu-costs/--no-gpu-costs", default=True, envvar="CHARGEBACK_GPU_COSTS",
                     show_default=True, help="Collect GPU-hours per model for cost-to-value."),
        click.option("--gpu-resolution", default="30s", envvar="CHARGEBACK_GPU_RESOLUTION",
                     show_default=True,
                     help="Integration step of GPU usage: the kube-state-metrics scrape interval."),
        click.option("--gpu-model-label", default=defaults.model_label,
                     envvar="CHARGEBACK_GPU_MODEL_LABEL", show_default=True,
                     help="kube_pod_labels label naming the model a serving pod serves."),
        click.option("--gpu-product-label", default=defaults.product_label,
                     envvar="CHARGEBACK_GPU_PRODUCT_LABEL", show_default=True,
                     help="kube_node_labels label naming the node's GPU product."),
        click.option("--gpu-utilization-metric", default=defaults.utilization_metric,
                     envvar="CHARGEBACK_GPU_UTILIZATION_METRIC", show_default=True,
                     help="DCGM metric of GPU utilisation percent."),
        click.option("--gpu-query", default="", envvar="CHARGEBACK_GPU_QUERY",
                     help="Override: PromQL of GPUs allocated by model and product."),
        click.option("--gpu-utilization-query", default="",
                     envvar="CHARGEBACK_GPU_UTILIZATION_QUERY",
                     help="Override: PromQL of per-GPU utilisation percent labelled by model."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def make_infra_source(options: dict[str, Any]) -> InfraSource | None:
    """The GPU source from :func:`infra_options` values (popped), None when switched off."""
    enabled = options.pop("gpu_costs")
    try:
        source = InfraSource(
            model_label=options.pop("gpu_model_label"),
            product_label=options.pop("gpu_product_label"),
            utilization_metric=options.pop("gpu_utilization_metric"),
            resolution_ms=buckets.duration_ms(options.pop("gpu_resolution")),
            gpu_query=options.pop("gpu_query"),
            utilization_query=options.pop("gpu_utilization_query"),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--gpu-*") from exc
    return source if enabled else None


LEDGER_HELP = "SQLAlchemy URL, e.g. sqlite:///ledger.db or postgresql+psycopg://..."


def read_groups(kubeconfig: Path) -> dict[str, list[str]] | None:
    """OpenShift Groups from a cluster, None where the API does not exist."""
    try:
        with client_from_kubeconfig(kubeconfig) as api:
            return openshift_groups(api)
    except Exception as exc:
        raise click.ClickException(f"cannot read OpenShift Groups via {kubeconfig}: {exc}") from exc


def parse_bucket(bucket: str) -> int:
    """A bucket size such as 1h or 15m in milliseconds; errors name --bucket."""
    try:
        return buckets.duration_ms(bucket)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--bucket") from exc


def open_ledger(dsn: str) -> Ledger:
    """The ledger at ``dsn``, or a CLI error saying why it cannot be opened."""
    try:
        return Ledger(dsn)
    except Exception as exc:
        raise click.ClickException(f"cannot open the ledger {dsn}: {exc}") from exc
