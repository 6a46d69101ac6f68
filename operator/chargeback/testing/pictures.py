"""Pictures of generated dashboards, drawn with matplotlib from the very same queries.

Grafana cannot run here, so the demo evaluates every panel's PromQL against Prometheus and draws
each panel at its grid position: stats as numbers, bar gauges as bars, time series as lines,
tables as text. Good enough to see what each panel answers.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROW_HEIGHT = 0.32  # inches per grid row


def _get(urls: Callable[[str], str], path: str, params: dict[str, str]) -> list[dict[str, Any]]:
    url = urls(params["query"])
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}{path}?{query}", timeout=60) as response:  # noqa: S310
        body = json.load(response)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _substitute(expr: str, hours: int) -> str:
    for variable, value in {"$__range": f"{hours}h", "$__interval": "1h", "$user": ".*",
                            "$tier": ".*", "$model": ".*", "$report": ".*"}.items():  # fmt: skip
        expr = expr.replace(variable, value)
    return expr


def _label(metric: dict[str, str], legend: str) -> str:
    text = legend
    for key, value in metric.items():
        text = text.replace("{{" + key + "}}", value)
    return text or ", ".join(f"{k}={v}" for k, v in metric.items()) or "total"


def _unit(panel: dict[str, Any]) -> str:
    unit = str(panel.get("fieldConfig", {}).get("defaults", {}).get("unit", ""))
    return unit.removeprefix("currency") if unit.startswith("currency") else ""


def draw(
    document: dict[str, Any], urls: Callable[[str], str], at_s: float, hours: int, path: Path
) -> Path:
    """Draw every panel of ``document`` as of ``at_s``; ``urls`` picks the Prometheus per query."""
    panels = [p for p in document["panels"] if p["type"] != "row"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in document["panels"])
    figure = plt.figure(figsize=(16, rows * ROW_HEIGHT))
    figure.suptitle(document["title"], fontsize=14)
    for panel in panels:
        grid = panel["gridPos"]
        box = (grid["x"] / 24 + 0.01, 1 - (grid["y"] + grid["h"]) / rows + 0.02,
               grid["w"] / 24 - 0.03, grid["h"] / rows - 0.05)  # fmt: skip
        axes = figure.add_axes(box)
        axes.set_title(panel["title"], fontsize=9, loc="left")
        target = panel["targets"][0]
        expr = _substitute(target["expr"], hours)
        legend, unit = target.get("legendFormat", ""), _unit(panel)
        if panel["type"] == "timeseries":
            window = {"start": str(at_s - hours * 3600), "end": str(at_s), "step": "3600"}
            result = _get(urls, "/api/v1/query_range", {"query": expr, **window})
            for series in result[:12]:
                xs = [(float(t) - at_s) / 3600 for t, _ in series["values"]]
                axes.plot(xs, [float(v) for _, v in series["values"]], linewidth=1,
                          label=_label(series["metric"], legend))  # fmt: skip
            axes.set_xlabel("hours before now", fontsize=7)
            if result:
                axes.legend(fontsize=5, loc="upper left", ncol=2)
        else:
            result = _get(urls, "/api/v1/query", {"query": expr, "time": str(at_s)})
            values = sorted(((_label(r["metric"], legend), float(r["value"][1])) for r in result),
                            key=lambda item: -item[1])  # fmt: skip
            axes.set_xticks([])
            axes.set_yticks([])
            if panel["type"] == "stat":
                total = sum(v for _, v in values)
                axes.text(0.5, 0.45, f"{total:,.2f} {unit}" if unit else f"{total:,.0f}",
                          ha="center", va="center", fontsize=16)  # fmt: skip
            elif panel["type"] == "bargauge":
                shown = values[:10][::-1]
                axes.barh([n[:28] for n, _ in shown], [v for _, v in shown], color="#3274d9")
                axes.set_yticks(range(len(shown)), [n[:28] for n, _ in shown], fontsize=6)
                axes.tick_params(axis="x", labelsize=6)
            else:
                lines = [f"{n[:60]:60s} {v:>14,.2f}" for n, v in values[:12]]
                axes.text(0.01, 0.98, "\n".join(lines) or "(no data)", va="top", family="monospace",
                          fontsize=5)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
