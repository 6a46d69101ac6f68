"""Perses dashboards from the same boards as the Grafana ones (``domain/dashboards.py``).

The OpenShift console shows Perses dashboards through the Cluster Observability Operator
(``PersesDashboard``, ``perses.dev/v1alpha1``, whose spec is the Perses dashboard spec). Each
panel keeps its PromQL as the Grafana panel has it; `$__range`, `$__interval` and the variables
are Perses' own. Perses queries are range queries: stat and bar panels show the last value,
which for `increase(...[$__range])` is the total over the time range shown.
"""

from __future__ import annotations

from typing import Any

from chargeback.domain.dashboards import Board, PanelSpec

GRID_COLUMNS = 24
PLUGINS = {"stat": "StatChart", "timeseries": "TimeSeriesChart", "bargauge": "BarChart",
           "table": "Table"}  # fmt: skip
"""Perses panel plugins by the kind of our panel specs."""


def _format(unit: str) -> dict[str, Any]:
    """A Perses format for a Grafana unit (money has two decimals; Perses has no currencies)."""
    if unit.startswith("currency"):
        return {"unit": "decimal", "decimalPlaces": 2}
    if unit == "s":
        return {"unit": "seconds"}
    return {"unit": "decimal"}


def _plugin(spec: PanelSpec) -> dict[str, Any]:
    kind = PLUGINS[spec.kind]
    if kind == "StatChart":
        return {"kind": kind, "spec": {"calculation": "last-number", "format": _format(spec.unit)}}
    if kind == "BarChart":
        return {"kind": kind, "spec": {"calculation": "last-number", "format": _format(spec.unit),
                                       "sort": "desc"}}  # fmt: skip
    if kind == "TimeSeriesChart":
        return {"kind": kind, "spec": {"legend": {"position": "bottom", "mode": "list"},
                                       "yAxis": {"format": _format(spec.unit)}}}  # fmt: skip
    return {"kind": kind, "spec": {}}


def panel(spec: PanelSpec) -> dict[str, Any]:
    """The Perses panel of one panel spec."""
    query: dict[str, Any] = {"query": spec.expr}
    if spec.legend:
        query["seriesNameFormat"] = spec.legend  # `{{label}}`, as in Grafana
    display = {"name": spec.title, **({"description": spec.description}
                                      if spec.description else {})}  # fmt: skip
    return {
        "kind": "Panel",
        "spec": {
            "display": display,
            "plugin": _plugin(spec),
            "queries": [{"kind": "TimeSeriesQuery", "spec": {"plugin": {
                "kind": "PrometheusTimeSeriesQuery", "spec": query}}}],
        },
    }  # fmt: skip


def _grid(title: str | None, keys: list[str], specs: tuple[PanelSpec, ...]) -> dict[str, Any]:
    """Panels left to right, wrapped at 24 columns."""
    items, x, y, row_height = [], 0, 0, 0
    for key, spec in zip(keys, specs, strict=True):
        if x + spec.width > GRID_COLUMNS:
            x, y, row_height = 0, y + row_height, 0
        items.append({"x": x, "y": y, "width": spec.width, "height": spec.height,
                      "content": {"$ref": f"#/spec/panels/{key}"}})  # fmt: skip
        x += spec.width
        row_height = max(row_height, spec.height)
    grid: dict[str, Any] = {"items": items}
    if title is not None:
        grid["display"] = {"title": title, "collapse": {"open": True}}
    return {"kind": "Grid", "spec": grid}


def dashboard_spec(board: Board) -> dict[str, Any]:
    """The Perses dashboard spec of ``board`` (a PersesDashboard's spec, a Dashboard's spec)."""
    panels: dict[str, Any] = {}
    layouts = []
    number = 0
    for title, specs in board.rows:
        keys = []
        for spec in specs:
            number += 1
            keys.append(f"panel{number}")
            panels[keys[-1]] = panel(spec)
        layouts.append(_grid(title, keys, specs))
    variables = [
        {"kind": "ListVariable", "spec": {
            "name": var.name, "display": {"name": var.title},
            "allowMultiple": True, "allowAllValue": True, "customAllValue": ".*",
            "defaultValue": "$__all",
            "plugin": {"kind": "PrometheusLabelValuesVariable",
                       "spec": {"labelName": var.label, "matchers": [var.selector]}},
        }}
        for var in board.variables
    ]  # fmt: skip
    return {
        "display": {"name": board.title},
        "duration": board.since,
        "refreshInterval": board.refresh,
        "variables": variables,
        "panels": panels,
        "layouts": layouts,
    }


def perses_dashboard(board: Board, name: str, project: str) -> dict[str, Any]:
    """A Perses ``Dashboard`` resource (what ``percli`` lints and applies)."""
    return {"kind": "Dashboard", "metadata": {"name": name, "project": project},
            "spec": dashboard_spec(board)}  # fmt: skip


def panel_queries(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of a Perses dashboard spec."""
    return [
        (p["spec"]["display"]["name"], q["spec"]["plugin"]["spec"]["query"])
        for p in spec["panels"].values()
        for q in p["spec"]["queries"]
    ]
