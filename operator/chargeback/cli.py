"""The ``chargeback`` command line: collection, the ledger, the operator and the demo."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from chargeback import __version__
from chargeback.adapters.kube import client_from_kubeconfig, openshift_groups
from chargeback.adapters.ledger import Ledger, LedgerError
from chargeback.adapters.prometheus import PrometheusClient, PrometheusError, PrometheusSettings
from chargeback.api.base import problems
from chargeback.api.common import API_VERSION
from chargeback.api.pricing import TierPricingSpec
from chargeback.api.report import UsageReportSpec
from chargeback.api.source import DEFAULT_METRICS, SourceSpec
from chargeback.domain import buckets
from chargeback.domain.dashboards import build_dashboard, build_value_dashboard
from chargeback.domain.infra import InfraSource
from chargeback.domain.periods import report_period
from chargeback.domain.pricing import PriceBook, PriceVersion, spec_digest
from chargeback.domain.selectors import SelectorError
from chargeback.render import render_table
from chargeback.services.collect import CollectError, Collector, CollectorSettings
from chargeback.services.infra import InfraCollector
from chargeback.services.report import ReportService

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


def load_price_book(path: Path) -> tuple[str, PriceBook]:
    """A TierPricing file (one document per price version) as a price book."""
    versions = []
    names = set()
    for number, document in enumerate(load_manifests(path, "TierPricing", "--pricing"), 1):
        names.add((document.get("metadata") or {}).get("name", ""))
        try:
            spec = TierPricingSpec.model_validate(document.get("spec") or {})
        except ValidationError as exc:
            raise click.BadParameter(
                f"{path}: {problems(exc, 'spec.')}", param_hint="--pricing"
            ) from exc
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
    try:
        spec = UsageReportSpec.model_validate(document.get("spec") or {})
    except ValidationError as exc:
        raise click.BadParameter(
            f"{path}: {problems(exc, 'spec.')}", param_hint="--report"
        ) from exc
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
    try:
        return SourceSpec.model_validate(document or {})
    except ValidationError as exc:
        raise click.BadParameter(f"{path}: {problems(exc)}", param_hint="--source") from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chargeback")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
def main(verbose: bool) -> None:
    """Billing-grade AI token chargeback from gateway counters in Prometheus."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


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
            resolution_ms=buckets.duration_ms(options.pop("gpu_resolution")),
            gpu_query=options.pop("gpu_query"),
            utilization_query=options.pop("gpu_utilization_query"),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--gpu-*") from exc
    return source if enabled else None


LEDGER_HELP = "SQLAlchemy URL, e.g. sqlite:///ledger.db or postgresql+psycopg://..."


@main.command()
@prometheus_options
@click.option("--ledger", "dsn", required=True, envvar="CHARGEBACK_LEDGER", help=LEDGER_HELP)
@click.option("--source", "source_file", required=True, type=click.Path(path_type=Path),
              help="YAML source definition (or a UsageReport manifest).")  # fmt: skip
@click.option("--from", "start", required=True, help="Start of the history (ISO 8601 with zone).")
@click.option("--to", "end", default="now", show_default=True, help="Collect buckets up to here.")
@click.option("--bucket", default="1h", show_default=True, help="Bucket size, e.g. 1h or 15m.")
def collect(
    *,
    prometheus_url: str,
    token_file: Path | None,
    ca_file: Path | None,
    insecure_skip_tls_verify: bool,
    dsn: str,
    source_file: Path,
    start: str,
    end: str,
    bucket: str,
) -> None:
    """Collect exact usage from Prometheus into the ledger, catching up from its watermark."""
    source = load_source(source_file)
    start_ms, end_ms = parse_time(start, "--from"), parse_time(end, "--to")
    if end_ms <= start_ms:
        raise click.BadParameter("must be after --from", param_hint="--to")
    bucket_ms = _bucket_ms(bucket)
    prometheus = make_prometheus(prometheus_url, token_file, ca_file, insecure_skip_tls_verify)
    ledger = _open_ledger(dsn)
    collector = Collector(prometheus, ledger, CollectorSettings(bucket_ms=bucket_ms))
    columns = [*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn()]
    try:
        with Progress(*columns, TimeRemainingColumn(), console=console, transient=True) as bar:
            task = bar.add_task("Collecting buckets", total=None)
            result = collector.collect(
                source, start_ms, end_ms,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
    except (PrometheusError, SelectorError, CollectError, LedgerError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        prometheus.close()
        ledger.close()
    watermark = buckets.from_ms(result.watermark_ms)
    click.echo(
        f"Collected source {result.source_id} ({result.metric}): {result.steps} buckets, "
        f"{result.tokens} tokens; complete up to {watermark:%Y-%m-%dT%H:%M:%SZ}"
    )
    for gap in result.gaps:
        click.echo(f"Gap {buckets.from_ms(gap.start_ms):%FT%TZ} - "
                   f"{buckets.from_ms(gap.end_ms):%FT%TZ}: {gap.reason}")  # fmt: skip
    if result.conflicted:
        click.echo("Stopped early: another collector was advancing the same source.")


@main.group()
def ledger() -> None:
    """Inspect the usage ledger."""


@ledger.command("show")
@click.option("--ledger", "dsn", required=True, envvar="CHARGEBACK_LEDGER", help=LEDGER_HELP)
@click.option("--source-id", default=None, help="Only this source (default: all).")
@click.option("--by", "group_by", type=click.Choice(["user", "tier", "model", "hour"]),
              default="tier", show_default=True, help="Break usage down by this.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)  # fmt: skip
def ledger_show(dsn: str, source_id: str | None, group_by: str, fmt: str) -> None:
    """Show sources, watermarks, gaps and usage totals stored in the ledger."""
    store = _open_ledger(dsn)
    try:
        records = [r for r in store.list_sources() if source_id in (None, r.id)]
        if source_id and not records:
            raise click.ClickException(f"no source {source_id!r} in the ledger")
        report: list[dict[str, Any]] = []
        for record in records:
            breakdown: dict[str, int] = defaultdict(int)
            for row in store.usage(record.id):
                label = (
                    f"{buckets.from_ms(row.bucket_start_ms):%FT%H:00Z}"
                    if group_by == "hour"
                    else getattr(row, group_by)
                )
                breakdown[label] += row.tokens
            report.append({
                "sourceId": record.id,
                "metric": record.metric,
                "start": f"{buckets.from_ms(record.start_ms):%FT%TZ}",
                "watermark": f"{buckets.from_ms(record.watermark_ms):%FT%TZ}",
                "tokens": sum(breakdown.values()),
                "by": group_by,
                "breakdown": dict(sorted(breakdown.items())),
                "gaps": [
                    {"start": f"{buckets.from_ms(g.start_ms):%FT%TZ}",
                     "end": f"{buckets.from_ms(g.end_ms):%FT%TZ}", "reason": g.reason}
                    for g in store.gaps(record.id)
                ],
            })  # fmt: skip
    finally:
        store.close()
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
        return
    out = Console()
    for item in report:
        table = Table(title=f"Source {item['sourceId']} ({item['metric']})")
        table.add_column(group_by)
        table.add_column("tokens", justify="right")
        for name, tokens in item["breakdown"].items():
            table.add_row(name or "(none)", f"{tokens:,}")
        table.add_row("[b]total", f"[b]{item['tokens']:,}")
        out.print(table)
        out.print(f"History {item['start']} to {item['watermark']}; {len(item['gaps'])} gap(s)")
        for gap in item["gaps"]:
            out.print(f"  gap {gap['start']} - {gap['end']}: {gap['reason']}")


@main.command()
@prometheus_options
@infra_options
@click.option(
    "--pricing",
    "pricing_file",
    required=True,
    type=click.Path(path_type=Path),
    help="TierPricing manifest; several documents are several price versions.",
)
@click.option(
    "--report",
    "report_file",
    required=True,
    type=click.Path(path_type=Path),
    help="UsageReport manifest.",
)
@click.option(
    "--ledger",
    "dsn",
    default="sqlite://",
    show_default="in memory",
    envvar="CHARGEBACK_LEDGER",
    help=LEDGER_HELP,
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Write here instead of standard output.",
)
@click.option(
    "--at",
    "at",
    default="now",
    show_default=True,
    help="Show the period containing this time (scheduled reports).",
)
@click.option("--bucket", default="1h", show_default=True, help="Bucket size, e.g. 1h or 15m.")
@click.option(
    "--kubeconfig",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Read OpenShift Groups for team attribution from this cluster.",
)
@click.option("--history-days", type=click.IntRange(0, 3660), default=62, show_default=True,
              envvar="CHARGEBACK_HISTORY_DAYS",
              help="Collect this many days before the period too (for forecasts).")  # fmt: skip
def report(
    *,
    prometheus_url: str,
    token_file: Path | None,
    ca_file: Path | None,
    insecure_skip_tls_verify: bool,
    pricing_file: Path,
    report_file: Path,
    dsn: str,
    fmt: str,
    output: Path | None,
    at: str,
    bucket: str,
    kubeconfig: Path | None,
    history_days: int,
    **gpu: Any,
) -> None:
    """Render a UsageReport from Prometheus without a cluster.

    Collects, prices and attributes usage, sets it beside GPU costs (cost-to-value) and
    forecasts the next period.
    """
    infra_source = make_infra_source(gpu)
    report_name, spec, pricing_name = load_report(report_file)
    book_name, book = load_price_book(pricing_file)
    if book_name != pricing_name:
        raise click.BadParameter(
            f"the report names TierPricing {pricing_name!r} but {pricing_file} holds {book_name!r}",
            param_hint="--pricing",
        )
    now_ms = parse_time("now", "--at")
    at_ms = parse_time(at, "--at")
    groups = read_groups(kubeconfig) if kubeconfig and spec.attribution.openshift_groups else None
    bucket_ms = _bucket_ms(bucket)
    prometheus = make_prometheus(prometheus_url, token_file, ca_file, insecure_skip_tls_verify)
    ledger = _open_ledger(dsn)
    try:
        infra = (
            InfraCollector(prometheus, ledger, infra_source, bucket_ms) if infra_source else None
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--gpu-resolution") from exc
    service = ReportService(
        Collector(prometheus, ledger, CollectorSettings(bucket_ms=bucket_ms)), ledger, infra
    )
    period = report_period(spec, at_ms)
    history = period.start_ms - history_days * buckets.DAY_MS
    try:
        rendered = service.render(report_name, spec, book, now_ms=now_ms, period=period,
                                  groups=groups, history_start_ms=history)  # fmt: skip
    except (PrometheusError, SelectorError, CollectError, LedgerError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        prometheus.close()
        ledger.close()
    if fmt == "table":
        render_table(rendered.document, Console(file=output.open("w") if output else None))
        return
    text = rendered.json if fmt == "json" else rendered.csv
    if output:
        output.write_text(text)
    else:
        click.echo(text, nl=False)


def read_groups(kubeconfig: Path) -> dict[str, list[str]] | None:
    """OpenShift Groups from a cluster, None where the API does not exist."""
    try:
        with client_from_kubeconfig(kubeconfig) as api:
            return openshift_groups(api)
    except Exception as exc:
        raise click.ClickException(f"cannot read OpenShift Groups via {kubeconfig}: {exc}") from exc


def _bucket_ms(bucket: str) -> int:
    try:
        return buckets.duration_ms(bucket)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--bucket") from exc


def _open_ledger(dsn: str) -> Ledger:
    try:
        return Ledger(dsn)
    except Exception as exc:
        raise click.ClickException(f"cannot open the ledger {dsn}: {exc}") from exc


@main.command()
@click.option(
    "--prometheus-url",
    envvar="CHARGEBACK_PROMETHEUS_URL",
    default="https://thanos-querier.openshift-monitoring.svc:9091",
    show_default=True,
    help="Prometheus / Thanos Querier base URL.",
)
@click.option(
    "--token-file",
    envvar="CHARGEBACK_PROMETHEUS_TOKEN_FILE",
    default="/var/run/secrets/kubernetes.io/serviceaccount/token",
    show_default=True,
    help="Bearer token file (re-read per request); ignored when missing.",
)
@click.option(
    "--ca-file",
    envvar="CHARGEBACK_PROMETHEUS_CA_FILE",
    default="/var/run/secrets/kubernetes.io/serviceaccount/service-ca.crt",
    show_default=True,
    help="CA bundle for Prometheus TLS; ignored when missing.",
)
@click.option(
    "--ledger",
    "dsn",
    envvar="CHARGEBACK_LEDGER",
    default="sqlite:////var/lib/chargeback/ledger.db",
    show_default=True,
    help=LEDGER_HELP,
)
@click.option(
    "--refresh-seconds",
    envvar="CHARGEBACK_REFRESH_SECONDS",
    default=60.0,
    show_default=True,
    help="How often each report is refreshed (and collected).",
)
@click.option(
    "--bucket",
    envvar="CHARGEBACK_BUCKET",
    default="1h",
    show_default=True,
    help="Collection bucket size.",
)
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    envvar="CHARGEBACK_NAMESPACES",
    help="Watch only these namespaces (repeatable); default: all.",
)
@click.option(
    "--metrics-port",
    envvar="CHARGEBACK_METRICS_PORT",
    default=8080,
    show_default=True,
    help="Port of /metrics, /healthz and /reports.",
)
@click.option("--liveness-port", default=8081, show_default=True, help="kopf liveness probe port.")
def run(
    *,
    prometheus_url: str,
    token_file: str,
    ca_file: str,
    dsn: str,
    refresh_seconds: float,
    bucket: str,
    namespaces: tuple[str, ...],
    metrics_port: int,
    liveness_port: int,
) -> None:
    """Run the operator (one replica by design: kopf has no lease-based leader election)."""
    _bucket_ms(bucket)
    os.environ.update({
        "CHARGEBACK_PROMETHEUS_URL": prometheus_url,
        "CHARGEBACK_PROMETHEUS_TOKEN_FILE": token_file,
        "CHARGEBACK_PROMETHEUS_CA_FILE": ca_file,
        "CHARGEBACK_LEDGER": dsn,
        "CHARGEBACK_REFRESH_SECONDS": str(refresh_seconds),
        "CHARGEBACK_BUCKET": bucket,
        "CHARGEBACK_METRICS_PORT": str(metrics_port),
    })  # fmt: skip
    if dsn.startswith("sqlite:///"):
        Path(dsn.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # Imported here: kopf and the handlers are only needed by this command.
    handlers = importlib.import_module("chargeback.handlers.operator")
    handlers.run_operator(list(namespaces), liveness_port)


@main.command()
@click.option(
    "--pricing",
    "pricing_file",
    required=True,
    type=click.Path(path_type=Path),
    help="TierPricing manifest (its last document is the version shown).",
)
@click.option(
    "--report",
    "report_file",
    type=click.Path(path_type=Path),
    default=None,
    help="UsageReport manifest whose source mapping to use (default: MaaS labels).",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="Directory to write the dashboard JSON into.",
)
def dashboards(pricing_file: Path, report_file: Path | None, output: Path) -> None:
    """Write Grafana dashboard JSON generated from a pricing, for any way of provisioning."""
    name, book = load_price_book(pricing_file)
    source = load_report(report_file)[1].source if report_file else SourceSpec()
    metric = source.metric or DEFAULT_METRICS[0]
    document = build_dashboard(name, book.versions[-1].spec, source, metric)
    output.mkdir(parents=True, exist_ok=True)
    target = output / f"chargeback-{name}.json"
    target.write_text(json.dumps(document, indent=2) + "\n")
    click.echo(f"Wrote {target} ({len(document['panels'])} panels)")
    spec = book.versions[-1].spec
    if spec.infrastructure is not None:
        value = build_value_dashboard(name, spec, source, metric, InfraSource())
        target = output / f"chargeback-{name}-value.json"
        target.write_text(json.dumps(value, indent=2) + "\n")
        click.echo(f"Wrote {target} ({len(value['panels'])} panels, cost to value)")


@main.command()
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Where exports, the ledger and logs go.",
)
@click.option("--hours", type=click.IntRange(2, 24 * 62), default=72, show_default=True,
              help="Hours of simulated traffic.")  # fmt: skip
@click.option("--users", type=click.IntRange(1, 10_000), default=60, show_default=True,
              help="Simulated users.")  # fmt: skip
@click.option(
    "--no-wait",
    is_flag=True,
    help="Stop after the check instead of waiting for Ctrl-C (the default without a terminal).",
)
def demo(output: Path, hours: int, users: int, no_wait: bool) -> None:
    """Run the local demo: control plane, Prometheus with simulated traffic, operator, report.

    Needs the demo extra (``pip install 'chargeback-operator[demo]'``) and a checkout of the
    repository (its CRDs and samples) with ``make tools`` run once.
    """
    try:
        # The test platform is not part of the operator: loaded only when the demo runs.
        from chargeback.testing.demo import DemoOptions, run_demo  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        raise click.ClickException(
            f"the demo needs the package {exc.name!r} from the demo extra: "
            "pip install 'chargeback-operator[demo]'"
        ) from exc
    # Absolute: the path ends up in a kubeconfig, where relative paths mean something else.
    wait = not no_wait and sys.stdin.isatty()
    options = DemoOptions(output=output.resolve(), hours=hours, users=users, wait=wait)
    try:
        ok = run_demo(options, Console())
    except Exception as exc:
        raise click.ClickException(f"the demo failed: {exc}") from exc
    if not ok:
        raise click.ClickException("the report did not match the ground truth")
