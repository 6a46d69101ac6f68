"""Terminal rendering of report documents (rich), for the CLI and the demo."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def render_table(document: dict[str, Any], out: Console) -> None:
    """A readable summary of a report document."""
    totals, currency = document["totals"], document["currency"]
    state = "final" if document["finalized"] else "open"
    out.print(f"[b]{document['report']}[/b]  {document['period']['start']} - "
              f"{document['period']['end']} ({state})")  # fmt: skip
    out.print(f"Tokens [b]{totals['tokens']:,}[/b]   Cost [b]{totals['cost']} {currency}[/b]")
    if totals["unpricedTokens"]:
        note = "tiers without a price, or before the first price version"
        out.print(f"[yellow]Unpriced tokens: {totals['unpricedTokens']:,} ({note})[/yellow]")
    for gap in document["gaps"]:
        out.print(f"[red]Gap {gap['start']} - {gap['end']}: {gap['reason']}[/red]")
    if not document["dataComplete"]:
        out.print(f"[yellow]Data collected through {document['dataThrough']} only[/yellow]")
    for title, key in (("By tier", "byTier"), ("By team", "byTeam"), ("By model", "byModel"),
                       ("Top users by cost", "topUsersByCost")):  # fmt: skip
        table = Table(title=title, title_justify="left")
        table.add_column("name")
        table.add_column("tokens", justify="right")
        table.add_column(f"cost ({currency})", justify="right")
        for row in document[key]:
            table.add_row(row["name"] or "(none)", f"{row['tokens']:,}", row["cost"])
        out.print(table)
