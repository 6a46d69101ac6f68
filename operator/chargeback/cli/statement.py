"""``chargeback statement``: a team's (or the whole report's) period as an HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from chargeback.cli.report import render_periods, report_options
from chargeback.domain.reports import iso
from chargeback.domain.statement import lines_of, render_statement


@click.command()
@report_options
@click.option("--team", default=None, help="The team whose statement to write (default: all).")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path("statement.html"),
    show_default=True,
    help="The HTML file to write (self-contained: it works offline).",
)
def statement(*, team: str | None, output: Path, **options: Any) -> None:
    """Write the HTML statement of a report's period, for a team or for all.

    Totals, models, users, the change since the period before (scheduled reports), unpriced
    usage and gaps, and a chart.

    Print it to PDF with headless Chromium:
    chromium --headless --no-sandbox --print-to-pdf=statement.pdf statement.html
    """
    shown, previous = render_periods(options, previous=True)
    documents = [shown.document] + ([previous.document] if previous else [])
    if team is not None and not any(lines_of(d, team) for d in documents):
        known = sorted({line.team for d in documents for line in d.lines})
        raise click.BadParameter(f"no usage of team {team!r} in the period; teams with usage: "
                                 f"{', '.join(known) or 'none'}", param_hint="--team")  # fmt: skip
    page = render_statement(shown.document, team=team,
                            previous=previous.document if previous else None,
                            context=shown.context)  # fmt: skip
    output.write_text(page)
    what = f"team {team}" if team else "all teams"
    click.echo(f"Wrote {output} ({what}, period from {iso(shown.document.period.start_ms)})")
