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
        rows = [{**row, "name": row["name"] or "(none)"} for row in document[key]]
        columns = {"name": "name", "tokens": "tokens", "cost": f"cost ({currency})"}
        out.print(_table(title, columns, rows))
    render_value(document, out)
    render_forecast(document, out)


def _table(title: str, columns: dict[str, str], rows: list[dict[str, Any]]) -> Table:
    """A table of ``rows`` showing ``columns`` (document key -> header).

    The first column is left-aligned; numbers right-aligned with thousands separators; missing
    values show as "-".
    """
    table = Table(title=title, title_justify="left")
    for index, header in enumerate(columns.values()):
        table.add_column(header, justify="left" if index == 0 else "right")
    for row in rows:
        cells = (row.get(key) for key in columns)
        table.add_row(*("-" if c is None else f"{c:,}" if isinstance(c, int) else c for c in cells))
    return table


def _available(document: dict[str, Any], key: str, what: str, out: Console) -> Any:
    """The section ``key`` when it is available; else print why not (if it exists) and None."""
    section = document.get(key)
    if section is not None and not section["available"]:
        out.print(f"[yellow]{what} unavailable: {section['reason']}[/yellow]")
    return section if section is not None and section["available"] else None


def render_value(document: dict[str, Any], out: Console) -> None:
    """Cost-to-value per model, or why there is none."""
    section = _available(document, "costToValue", "Cost-to-value", out)
    if section is None:
        return
    currency, totals = document["currency"], section["totals"]
    out.print(
        f"Revenue [b]{totals['revenue']}[/b]   Infrastructure [b]{totals['infrastructureCost']}"
        f"[/b]   Margin [b]{totals['margin']} {currency}[/b]   GPU-hours {totals['gpuHours']} "
        f"(idle {totals['idleGpuHours']})"
    )
    if section["reason"]:
        out.print(f"[yellow]{section['reason']}[/yellow]")
    columns = {"name": "model", "tokens": "tokens", "revenue": "revenue",
               "infrastructureCost": "infra cost", "margin": "margin",
               "costPerMillionTokens": "cost/1M tokens", "gpuHours": "GPU-h",
               "idleGpuHours": "idle GPU-h", "meanUtilization": "util %"}  # fmt: skip
    out.print(_table(f"Cost to value by model ({currency})", columns, section["byModel"]))


def render_forecast(document: dict[str, Any], out: Console) -> None:
    """Next period's forecast per model, or why there is none."""
    section = _available(document, "forecast", "Forecast", out)
    if section is None:
        return
    period = section["period"]
    title = (f"Forecast {period['start']} - {period['end']} ({section['interval']} interval, "
             f"from {section['history']['days']} days)")  # fmt: skip
    columns = {"name": "model", "tokens": "tokens", "lower": "lower", "upper": "upper",
               "gpuHours": "GPU-h"}  # fmt: skip
    rows = [*section["byModel"], {"name": "total", **section["totals"]}]
    out.print(_table(title, columns, rows))
