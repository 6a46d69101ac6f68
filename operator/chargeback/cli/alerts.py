"""``chargeback alerts``: Prometheus alerting rules of a UsageReport's budgets."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from chargeback.cli.common import load_report
from chargeback.domain.alerts import budget_rules


@click.command()
@click.option(
    "--report",
    "report_file",
    required=True,
    type=click.Path(path_type=Path),
    help="UsageReport manifest (its namespace and name are the ones the operator reports under).",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the rule file here instead of standard output.",
)
def alerts(report_file: Path, output: Path | None) -> None:
    """Write the alerting rules of a report's budgets as a Prometheus rule file.

    For Prometheus setups without prometheus-operator (where the operator makes a
    PrometheusRule itself). The rules read the operator's chargeback_budget_* metrics.
    """
    key, spec, _ = load_report(report_file)
    if not spec.budgets:
        raise click.BadParameter(f"{report_file} has no spec.budgets", param_hint="--report")
    namespace, name = key.split("/", 1)
    text = yaml.safe_dump(budget_rules(namespace, name, spec.budgets), sort_keys=False,
                          allow_unicode=True, width=100)  # fmt: skip
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text)
    count = sum(len(g["rules"]) for g in budget_rules(namespace, name, spec.budgets)["groups"])
    click.echo(f"Wrote {output} ({count} rules for UsageReport {key})")
