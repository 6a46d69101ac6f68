"""The ``chargeback`` command line: collection, reports, dashboards, the operator and the demo."""

from __future__ import annotations

import click

from chargeback import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chargeback")
def main() -> None:
    """Billing-grade AI token chargeback from gateway counters in Prometheus."""


@main.command()
def demo() -> None:
    """Run the local demo: control plane, Prometheus with simulated traffic, operator, report."""
    raise click.ClickException("the demo is not implemented yet (issue: newcomer experience)")
