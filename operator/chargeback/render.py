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
    render_value(document, out)
    render_forecast(document, out)


def render_value(document: dict[str, Any], out: Console) -> None:
    """Cost-to-value per model, or why there is none."""
    section = document.get("costToValue")
    if section is None:
        return
    if not section["available"]:
        out.print(f"[yellow]Cost-to-value unavailable: {section['reason']}[/yellow]")
        return
    currency, totals = document["currency"], section["totals"]
    out.print(
        f"Revenue [b]{totals['revenue']}[/b]   Infrastructure [b]{totals['infrastructureCost']}"
        f"[/b]   Margin [b]{totals['margin']} {currency}[/b]   GPU-hours {totals['gpuHours']} "
        f"(idle {totals['idleGpuHours']})"
    )
    if section["reason"]:
        out.print(f"[yellow]{section['reason']}[/yellow]")
    table = Table(title=f"Cost to value by model ({currency})", title_justify="left")
    columns = ("name", "tokens", "revenue", "infrastructureCost", "margin",
               "costPerMillionTokens", "gpuHours", "idleGpuHours", "meanUtilization")  # fmt: skip
    headers = ("model", "tokens", "revenue", "infra cost", "margin", "cost/1M tokens",
               "GPU-h", "idle GPU-h", "util %")  # fmt: skip
    for header in headers:
        table.add_column(header, justify="left" if header == "model" else "right")
    for row in section["byModel"]:
        cells = [row[c] for c in columns]
        table.add_row(*("-" if c is None else f"{c:,}" if isinstance(c, int) else c for c in cells))
    out.print(table)


def render_forecast(document: dict[str, Any], out: Console) -> None:
    """Next period's forecast per model, or why there is none."""
    section = document.get("forecast")
    if section is None:
        return
    if not section["available"]:
        out.print(f"[yellow]Forecast unavailable: {section['reason']}[/yellow]")
        return
    period = section["period"]
    table = Table(
        title=f"Forecast {period['start']} - {period['end']} ({section['interval']} interval, "
        f"from {section['history']['days']} days)",
        title_justify="left",
    )
    for header in ("model", "tokens", "lower", "upper", "GPU-h"):
        table.add_column(header, justify="left" if header == "model" else "right")
    for row in [*section["byModel"], {"name": "total", **section["totals"], "gpuHours": None}]:
        table.add_row(row["name"], f"{row['tokens']:,}", f"{row['lower']:,}",
                      f"{row['upper']:,}", row["gpuHours"] or "-")  # fmt: skip
    out.print(table)
