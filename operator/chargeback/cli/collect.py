"""``chargeback collect`` and ``chargeback ledger``: history into the ledger, and what it holds."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from chargeback.adapters.ledger import LedgerError
from chargeback.adapters.prometheus import PrometheusError, PrometheusSettings
from chargeback.app.root import collecting, open_ledger
from chargeback.cli.common import (
    LEDGER_HELP,
    console,
    load_source,
    parse_bucket,
    parse_time,
    prometheus_options,
)
from chargeback.domain import buckets
from chargeback.domain.selectors import SelectorError
from chargeback.services import ledger_view
from chargeback.services.collect import CollectError


@click.command()
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
    bucket_ms = parse_bucket(bucket)
    prometheus = PrometheusSettings(url=prometheus_url, token_file=token_file, ca_file=ca_file,
                                    verify_tls=not insecure_skip_tls_verify)  # fmt: skip
    columns = [*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn()]
    try:
        with (
            collecting(prometheus, dsn, bucket_ms) as collector,
            Progress(*columns, TimeRemainingColumn(), console=console, transient=True) as bar,
        ):
            task = bar.add_task("Collecting buckets", total=None)
            result = collector.collect(
                source, start_ms, end_ms,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
    except (PrometheusError, SelectorError, CollectError, LedgerError) as exc:
        raise click.ClickException(str(exc)) from exc
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


@click.group()
def ledger() -> None:
    """Inspect the usage ledger."""


@ledger.command("show")
@click.option("--ledger", "dsn", required=True, envvar="CHARGEBACK_LEDGER", help=LEDGER_HELP)
@click.option("--source-id", default=None, help="Only this source (default: all).")
@click.option("--by", "group_by", type=click.Choice(ledger_view.GROUPINGS),
              default="tier", show_default=True, help="Break usage down by this.")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)  # fmt: skip
def ledger_show(dsn: str, source_id: str | None, group_by: str, fmt: str) -> None:
    """Show sources, watermarks, gaps and usage totals stored in the ledger."""
    try:
        store = open_ledger(dsn)
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        report = ledger_view.sources(store, source_id, group_by)
    finally:
        store.close()
    if source_id and not report:
        raise click.ClickException(f"no source {source_id!r} in the ledger")
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
