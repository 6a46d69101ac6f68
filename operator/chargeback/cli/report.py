"""``chargeback report``: a UsageReport rendered from Prometheus without a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from chargeback.adapters.ledger import LedgerError
from chargeback.adapters.prometheus import PrometheusError, PrometheusSettings
from chargeback.app.root import reporting
from chargeback.cli.common import (
    BILLING_SETTINGS,
    GPU_SETTINGS,
    LEDGER_HELP,
    load_price_book,
    load_report,
    parse_bucket,
    parse_time,
    prometheus_options,
    read_groups,
    settings_from,
    settings_options,
)
from chargeback.domain import buckets, formats
from chargeback.domain.periods import report_period
from chargeback.domain.selectors import SelectorError
from chargeback.render import render_table
from chargeback.services.collect import CollectError


class FormatChoice(click.Choice[str]):
    """``table`` or any format registered in ``domain/formats``, as registered when it runs."""

    def __init__(self) -> None:
        super().__init__(["table"])

    @property
    def choices(self) -> tuple[str, ...]:
        """The choices at the time of asking."""
        return ("table", *formats.names())

    @choices.setter
    def choices(self, _: Any) -> None:
        pass


@click.command()
@prometheus_options
@settings_options(GPU_SETTINGS + BILLING_SETTINGS)
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
@click.option("--format", "fmt", type=FormatChoice(), default="table", show_default=True)
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
    **_: Any,
) -> None:
    """Render a UsageReport from Prometheus without a cluster.

    Collects, prices and attributes usage, sets it beside GPU costs (cost-to-value) and
    forecasts the next period.
    """
    gpu = settings_from(click.get_current_context(), GPU_SETTINGS)
    billing = settings_from(click.get_current_context(), BILLING_SETTINGS)
    infra = gpu.infrastructure()
    report_name, spec, pricing_name = load_report(report_file)
    book_name, book = load_price_book(pricing_file)
    if book_name != pricing_name:
        raise click.BadParameter(
            f"the report names TierPricing {pricing_name!r} but {pricing_file} holds {book_name!r}",
            param_hint="--pricing",
        )
    now_ms, at_ms = parse_time("now", "--at"), parse_time(at, "--at")
    groups = read_groups(kubeconfig) if kubeconfig and spec.attribution.openshift_groups else None
    bucket_ms = parse_bucket(bucket)
    if infra is not None and bucket_ms % infra.resolution_ms:
        raise click.BadParameter(f"the bucket ({bucket}) must be a multiple of the GPU "
                                 f"resolution ({gpu.gpu_resolution})",
                                 param_hint="--gpu-resolution")  # fmt: skip
    prometheus = PrometheusSettings(url=prometheus_url, token_file=token_file, ca_file=ca_file,
                                    verify_tls=not insecure_skip_tls_verify)  # fmt: skip
    period = report_period(spec, at_ms)
    history = period.start_ms - history_days * buckets.DAY_MS
    try:
        with reporting(prometheus, dsn, bucket_ms, infra, billing.export_context()) as service:
            rendered = service.render(report_name, spec, book, now_ms=now_ms, period=period,
                                      groups=groups, history_start_ms=history)  # fmt: skip
    except (PrometheusError, SelectorError, CollectError, LedgerError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if fmt == "table":
        table = rendered.document.as_dict()
        render_table(table, Console(file=output.open("w") if output else None))
        return
    text = rendered.text(fmt)
    if output:
        output.write_text(text)
    else:
        click.echo(text, nl=False)
