"""CSV: the line items, with the period and currency on every row (for spreadsheets)."""

from __future__ import annotations

import csv
import io

from chargeback.domain.formats import DEFAULT_CONTEXT, ExportContext, Format
from chargeback.domain.money import format_money
from chargeback.domain.reports import LINE_COLUMNS, ReportDocument, iso


def render(document: ReportDocument, _: ExportContext = DEFAULT_CONTEXT) -> str:
    """Line items as CSV, with the period and currency on every row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*LINE_COLUMNS, "currency", "periodStart", "periodEnd"])
    start, end = iso(document.period.start_ms), iso(document.period.end_ms)
    currency = document.currency
    for ln in document.lines:
        values = (ln.user, ln.team, ln.tier, ln.model, ln.token_type, ln.tokens,
                  format_money(ln.cost, currency))  # fmt: skip
        extra = (ln.unpriced_tokens, ln.included_tokens, currency, start, end)
        writer.writerow([*values, *extra])
    return out.getvalue()


FORMAT = Format("csv", "text/csv", render)
