"""Statements: a team's (or a whole report's) period as a page a team lead reads in a browser.

Rendered from the typed document with Jinja2 (autoescaped), self-contained: styles inline and
the chart an inline SVG, so the page works offline, from a file, a ConfigMap or the operator.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import jinja2

from chargeback.domain.formats import DEFAULT_CONTEXT, ExportContext
from chargeback.domain.money import format_money
from chargeback.domain.reports import Line, ReportDocument, iso

TOP_USERS = 10
CHART_BARS = 10

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("chargeback.domain", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Row:
    """One model or user of the statement."""

    name: str
    tokens: int
    cost: str
    share: str
    """Share of the statement's cost, in percent."""


@dataclass(frozen=True)
class Change:
    """The previous period beside this one."""

    start: str
    tokens: int
    cost: str
    delta: str
    """Cost now minus cost then, signed."""
    percent: str | None
    """The change in percent (None when the previous period cost nothing)."""


@dataclass(frozen=True)
class Totals:
    """What a statement sums."""

    tokens: int
    cost: Decimal
    unpriced: int


def _totals(lines: Iterable[Line]) -> Totals:
    items = list(lines)
    return Totals(sum(ln.tokens for ln in items), sum((ln.cost for ln in items), Decimal(0)),
                  sum(ln.unpriced_tokens for ln in items))  # fmt: skip


def _rows(lines: Sequence[Line], key: str, currency: str, total: Decimal) -> list[Row]:
    tokens: dict[str, int] = defaultdict(int)
    cost: dict[str, Decimal] = defaultdict(Decimal)
    for line in lines:
        tokens[getattr(line, key)] += line.tokens
        cost[getattr(line, key)] += line.cost
    ordered = sorted(tokens, key=lambda n: (-cost[n], -tokens[n], n))
    return [Row(n, tokens[n], format_money(cost[n], currency), _percent(cost[n], total))
            for n in ordered]  # fmt: skip


def _percent(part: Decimal, whole: Decimal) -> str:
    if not whole:
        return "0.0"
    return str((part * 100 / whole).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def lines_of(document: ReportDocument, team: str | None) -> list[Line]:
    """The document's lines of ``team`` (all of them for None)."""
    return [ln for ln in document.lines if team is None or ln.team == team]


@dataclass(frozen=True)
class Bar:
    """One bar of the cost-by-model chart (an inline SVG in the template)."""

    name: str
    cost: str
    y: int
    width: int


def chart(rows: Sequence[Row]) -> list[Bar]:
    """The ten costliest models as bars up to 360 px wide."""
    shown = rows[:CHART_BARS]
    top = max((Decimal(r.cost) for r in shown), default=Decimal(0))
    return [Bar(r.name[:40], r.cost, 10 + index * 28,
                0 if not top else int(Decimal(r.cost) / top * 360))
            for index, r in enumerate(shown)]  # fmt: skip


def render_statement(
    document: ReportDocument,
    *,
    team: str | None = None,
    previous: ReportDocument | None = None,
    context: ExportContext = DEFAULT_CONTEXT,
) -> str:
    """The HTML statement of ``team`` (or of the whole report) for the document's period."""
    currency = document.currency
    lines = lines_of(document, team)
    totals = _totals(lines)
    by_model = _rows(lines, "model", currency, totals.cost)
    by_user = _rows(lines, "user", currency, totals.cost)
    change = None
    if previous is not None:
        before = _totals(lines_of(previous, team))
        delta = totals.cost - before.cost
        change = Change(
            start=iso(previous.period.start_ms), tokens=before.tokens,
            cost=format_money(before.cost, currency),
            delta=("+" if delta >= 0 else "-") + format_money(abs(delta), currency),
            percent=None if not before.cost else _percent(delta, before.cost),
        )  # fmt: skip
    return _TEMPLATES.get_template("statement.html.j2").render(
        document=document, team=team, currency=currency, context=context,
        start=iso(document.period.start_ms), end=iso(document.period.end_ms),
        through=iso(min(document.data_through_ms, document.period.end_ms)),
        tokens=totals.tokens, cost=format_money(totals.cost, currency),
        unpriced=totals.unpriced, by_model=by_model, by_user=by_user,
        top_users=by_user[:TOP_USERS], change=change, bars=chart(by_model),
        gaps=[(iso(g.start_ms), iso(g.end_ms), g.reason) for g in document.gaps],
    )  # fmt: skip
