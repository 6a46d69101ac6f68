"""The ``chargeback`` command line: collection, the ledger, the operator and the demo."""

from __future__ import annotations

import datetime as dt
import json
import logging
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
from chargeback.adapters.ledger import Ledger, LedgerError
from chargeback.adapters.prometheus import PrometheusClient, PrometheusError, PrometheusSettings
from chargeback.api.source import SourceSpec
from chargeback.domain import buckets
from chargeback.domain.selectors import SelectorError
from chargeback.services.collect import CollectError, Collector, CollectorSettings

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
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
        raise click.BadParameter(f"{path}: {problems}", param_hint="--source") from exc


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
    try:
        bucket_ms = int(buckets.parse_duration(bucket).total_seconds() * 1000)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--bucket") from exc
    prometheus = make_prometheus(prometheus_url, token_file, ca_file, insecure_skip_tls_verify)
    try:
        ledger = Ledger(dsn)
    except (LedgerError, Exception) as exc:
        raise click.ClickException(f"cannot open the ledger {dsn}: {exc}") from exc
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
    try:
        store = Ledger(dsn)
    except Exception as exc:
        raise click.ClickException(f"cannot open the ledger {dsn}: {exc}") from exc
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
def demo() -> None:
    """Run the local demo: control plane, Prometheus with simulated traffic, operator, report."""
    raise click.ClickException("the demo is not implemented yet (issue: newcomer experience)")
