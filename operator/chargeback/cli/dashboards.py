"""``chargeback dashboards``: Grafana dashboard JSON generated from a pricing."""

from __future__ import annotations

import json
from pathlib import Path

import click

from chargeback.api.source import DEFAULT_METRICS, SourceSpec
from chargeback.cli.common import (
    load_price_book,
    load_report,
)
from chargeback.domain.infra import InfraSource
from chargeback.domain.value_dashboard import dashboards_of


@click.command()
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
    output.mkdir(parents=True, exist_ok=True)
    boards = dashboards_of(name, book.versions[-1].spec, source, metric, InfraSource())
    for suffix, document in boards.items():
        target = output / f"chargeback-{name}{suffix}.json"
        target.write_text(json.dumps(document, indent=2) + "\n")
        click.echo(f"Wrote {target} ({len(document['panels'])} panels)")
