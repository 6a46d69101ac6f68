"""The ``chargeback`` command line: collection, the ledger, reports, the operator and the demo.

One module per command group; this one defines the group and registers them.
"""

from __future__ import annotations

import logging

import click

from chargeback import __version__
from chargeback.cli.alerts import alerts
from chargeback.cli.collect import collect, ledger
from chargeback.cli.dashboards import dashboards
from chargeback.cli.demo import demo
from chargeback.cli.report import report
from chargeback.cli.run import run
from chargeback.cli.statement import statement


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chargeback")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
def main(verbose: bool) -> None:
    """Billing-grade AI token chargeback from gateway counters in Prometheus."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


for command in (collect, ledger, report, statement, run, dashboards, alerts, demo):
    main.add_command(command)
