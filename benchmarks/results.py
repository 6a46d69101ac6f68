"""benchmarks/results.json: every measured figure with its baseline, ratio and target.

Each benchmark records its entries by name (a later run replaces an entry of the same name).
The summary table at the top of docs/benchmarks.md is generated from results.json on every
record; the sections below it say how each figure was measured.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.json"
DOCUMENT = ROOT / "docs" / "benchmarks.md"


def entry(
    name: str, value: float, unit: str, baseline: float | None, target: float | None
) -> dict[str, Any]:
    """One figure: ``value`` against ``baseline`` and ``target``.

    The ratio is value / baseline; the target bounds the ratio when there is a baseline, else
    the value itself.
    """
    ratio = value / baseline if baseline else None
    measured = ratio if ratio is not None else value
    return {
        "name": name,
        "value": round(value, 4),
        "unit": unit,
        "baseline": None if baseline is None else round(baseline, 4),
        "ratio": None if ratio is None else round(ratio, 3),
        "target": target,
        "met": None if target is None else measured <= target,
        "measured": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def record(entries: list[dict[str, Any]]) -> None:
    """Add or replace ``entries`` in results.json (sorted by name)."""
    existing = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    names = {e["name"] for e in entries}
    merged = [e for e in existing if e["name"] not in names] + entries
    RESULTS.write_text(json.dumps(sorted(merged, key=lambda e: e["name"]), indent=2) + "\n")
    write_section(summary(), SUMMARY)


SUMMARY = ("<!-- results:start -->", "<!-- results:end -->")


def _figure(value: float | None, unit: str = "") -> str:
    if value is None:
        return ""
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return f"{text} {unit}".strip()


def summary() -> str:
    """The table of every figure in results.json, between the summary markers."""
    entries = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    rows = []
    for e in entries:
        ratio = f"{e['ratio']:.2f}x" if e["ratio"] is not None else ""
        target = "" if e["target"] is None else f"{'<= ' if e['target'] else ''}{e['target']}"
        target += "x" if target and e["ratio"] is not None else ""
        met = {True: "met", False: "**not met**", None: ""}[e["met"]]
        rows.append(
            f"| {e['name']} | {_figure(e['value'], e['unit'])} | "
            f"{_figure(e['baseline'], e['unit'])} | {ratio} | {target} | {met} | "
            f"{e['measured'][:10]} |"
        )
    table = "\n".join(rows)
    return f"""{SUMMARY[0]}
## Summary (generated from benchmarks/results.json)

| figure | value | baseline | ratio | target | | measured |
|---|---|---|---|---|---|---|
{table}
{SUMMARY[1]}"""


def write_section(block: str, markers: tuple[str, str]) -> str:
    """Replace the section between ``markers``, else add it; return it.

    A new summary goes before the first section, any other before "## Reproduce".
    """
    text = DOCUMENT.read_text() if DOCUMENT.exists() else "# Benchmarks\n\n## Reproduce\n"
    pattern = re.compile(re.escape(markers[0]) + ".*?" + re.escape(markers[1]), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    elif markers == SUMMARY and "\n## " in text:
        first = text.index("\n## ")
        text = text[:first] + "\n" + block + "\n" + text[first:]
    else:
        text = text.replace("## Reproduce", block + "\n\n## Reproduce")
    DOCUMENT.write_text(text)
    return block
