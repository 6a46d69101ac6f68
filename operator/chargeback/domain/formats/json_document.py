"""JSON: the whole document, deterministic (the canonical rendition stored in the ledger)."""

from __future__ import annotations

import json

from chargeback.domain.formats import DEFAULT_CONTEXT, ExportContext, Format
from chargeback.domain.reports import ReportDocument


def render(document: ReportDocument, _: ExportContext = DEFAULT_CONTEXT) -> str:
    """Deterministic JSON text of the whole document."""
    return json.dumps(document.as_dict(), indent=2, ensure_ascii=False) + "\n"


def parse(text: str) -> ReportDocument:
    """A document back from its JSON rendition (``render(parse(t)) == t``)."""
    return ReportDocument.from_dict(json.loads(text))


FORMAT = Format("json", "application/json", render)
