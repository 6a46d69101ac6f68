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
from chargeback.domain.periods import previous_period, report_period
from chargeback.domain.selectors import SelectorError
from chargeback.render import render_table
from chargeback.services.collect import CollectError
from chargeback.services.report import Rendered


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


def report_options(func: Any) -> Any:
    """Where a report's usage and prices come from (``report`` and ``statement``)."""
    options = [
        prometheus_options,
        settings_options(GPU_SETTINGS + BILLING_SETTINGS),
        click.option("--pricing", "pricing_file", required=True, type=click.Path(path_type=Path),
                     help="TierPricing manifest; several documents are several price versions."),
        click.option("--report", "report_file", required=True, type=click.Path(path_type=Path),
                     help="UsageReport manifest."),
        click.option("--ledger", "dsn", default="sqlite://", show_default="in memory",
                     envvar="CHARGEBACK_LEDGER", help=LEDGER_HELP),
        click.option("--at", "at", default="now", show_default=True,
                     help="Show the period containing this time (scheduled reports)."),
        click.option("--bucket", default="1h", show_default=True,
                     help="Bucket size, e.g. 1h or 15m."),
        click.option("--kubeconfig", type=click.Path(exists=True, path_type=Path), default=None,
                     help="Read OpenShift Groups for team attribution from this cluster."),
        click.option("--history-days", type=click.IntRange(0, 3660), default=62,
                     show_default=True, envvar="CHARGEBACK_HISTORY_DAYS",
                     help="Collect this many days before the period too (for forecasts)."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def render_periods(options: dict[str, Any], *, previous: bool) -> tuple[Rendered, Rendered | None]:
    """The report's period at ``--at`` and, when asked and scheduled, the period before it."""
    context = click.get_current_context()
    gpu = settings_from(context, GPU_SETTINGS)
    billing = settings_from(context, BILLING_SETTINGS)
    infra = gpu.infrastructure()
    report_file, pricing_file = options["report_file"], options["pricing_file"]
    report_name, spec, pricing_name = load_report(report_file)
    book_name, book = load_price_book(pricing_file)
    if book_name != pricing_name:
        raise click.BadParameter(
            f"the report names TierPricing {pricing_name!r} but {pricing_file} holds {book_name!r}",
            param_hint="--pricing",
        )
    now_ms, at_ms = parse_time("now", "--at"), parse_time(options["at"], "--at")
    kubeconfig = options["kubeconfig"]
    groups = read_groups(kubeconfig) if kubeconfig and spec.attribution.openshift_groups else None
    bucket_ms = parse_bucket(options["bucket"])
    if infra is not None and bucket_ms % infra.resolution_ms:
        raise click.BadParameter(f"the bucket ({options['bucket']}) must be a multiple of the "
                                 f"GPU resolution ({gpu.gpu_resolution})",
                                 param_hint="--gpu-resolution")  # fmt: skip
    prometheus = PrometheusSettings(url=options["prometheus_url"], token_file=options["token_file"],
                                    ca_file=options["ca_file"],
                                    verify_tls=not options["insecure_skip_tls_verify"])  # fmt: skip
    period = report_period(spec, at_ms)
    before = (previous_period(period, spec.schedule.interval, spec.schedule.time_zone)
              if previous and spec.schedule else None)  # fmt: skip
    history = (before or period).start_ms - options["history_days"] * buckets.DAY_MS
    try:
        with reporting(prometheus, options["dsn"], bucket_ms, infra,
                       billing.export_context()) as service:  # fmt: skip
            shown, earlier = (
                service.render(report_name, spec, book, now_ms=now_ms, period=p, groups=groups,
                               history_start_ms=history)
                if p else None
                for p in (period, before)
            )  # fmt: skip
    except (PrometheusError, SelectorError, CollectError, LedgerError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    assert shown is not None  # noqa: S101 - the period shown is always rendered
    return shown, earlier


@click.command()
@report_options
@click.option("--format", "fmt", type=FormatChoice(), default="table", show_default=True)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Write here instead of standard output.",
)
def report(*, fmt: str, output: Path | None, **options: Any) -> None:
    """Render a UsageReport from Prometheus without a cluster.

    Collects, prices and attributes usage, sets it beside GPU costs (cost-to-value) and
    forecasts the next period.
    """
    rendered, _ = render_periods(options, previous=False)
    if fmt == "table":
        table = rendered.document.as_dict()
        render_table(table, Console(file=output.open("w") if output else None))
        return
    text = rendered.text(fmt)
    if output:
        output.write_text(text)
    else:
        click.echo(text, nl=False)
