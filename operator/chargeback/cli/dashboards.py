"""``chargeback dashboards``: Grafana and Perses dashboards generated from a pricing."""

from __future__ import annotations

import json
from pathlib import Path

import click

from chargeback.api.source import DEFAULT_METRICS, SourceSpec
from chargeback.cli.common import (
    load_price_book,
    load_report,
)
from chargeback.domain.dashboards import grafana
from chargeback.domain.infra import InfraSource
from chargeback.domain.perses import perses_dashboard
from chargeback.domain.value_dashboard import boards_of


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
@click.option(
    "--kinds",
    type=click.Choice(["grafana", "perses", "both"]),
    default="grafana",
    show_default=True,
    help="Grafana JSON, Perses Dashboard resources (for `percli apply`), or both.",
)
@click.option("--project", default="chargeback", show_default=True,
              help="The Perses project of the Perses dashboards.")  # fmt: skip
def dashboards(
    pricing_file: Path, report_file: Path | None, output: Path, kinds: str, project: str
) -> None:
    """Write dashboards generated from a pricing, for any way of provisioning.

    Grafana JSON (`chargeback-<pricing>.json`) and/or Perses Dashboard resources
    (`chargeback-<pricing>.perses.json`), from the same panel definitions.
    """
    name, book = load_price_book(pricing_file)
    source = load_report(report_file)[1].source if report_file else SourceSpec()
    metric = source.metric or DEFAULT_METRICS[0]
    output.mkdir(parents=True, exist_ok=True)
    boards = boards_of(name, book.versions[-1].spec, source, metric, InfraSource())
    for suffix, board in boards.items():
        base = f"chargeback-{name}{suffix}"
        if kinds in ("grafana", "both"):
            document = grafana(board)
            target = output / f"{base}.json"
            target.write_text(json.dumps(document, indent=2) + "\n")
            click.echo(f"Wrote {target} ({len(document['panels'])} panels)")
        if kinds in ("perses", "both"):
            resource = perses_dashboard(board, base, project)
            target = output / f"{base}.perses.json"
            target.write_text(json.dumps(resource, indent=2) + "\n")
            click.echo(f"Wrote {target} ({len(resource['spec']['panels'])} panels)")
