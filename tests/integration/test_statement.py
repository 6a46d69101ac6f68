"""Statements in a real browser: `chargeback statement`, as installed, opened by headless
Chromium; the rendered page shows the JSON document's totals, and prints to PDF."""

from __future__ import annotations

import html.parser
import json
import subprocess
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from chargeback.testing.prometheus import PrometheusServer
from chargeback.testing.tools import binary
from tests.conftest import ROOT, CleanInstall
from tests.test_docs import fixed_example_traffic

ARTIFACTS = ROOT / "test-artifacts"
"""Screenshots and PDFs the tests keep (not committed)."""


class Texts(html.parser.HTMLParser):
    """Text of the DOM as the browser serialised it: of each element with an id, and of each
    table's cells by row."""

    VOID = frozenset({"meta", "link", "br", "rect", "img"})

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self._open: list[str | None] = []
        self._table: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        element = dict(attrs).get("id")
        self._open.append(element)
        if tag == "table":
            self._table = element
            self.tables[element or ""] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag == "td" and self._table is not None:
            self.tables[self._table][-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if self._open:
            self._open.pop()
        if tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        for element in self._open:
            if element:
                self.by_id[element] = self.by_id.get(element, "") + data
        table = self.tables.get(self._table or "") if self._table is not None else None
        if table and table[-1]:
            table[-1][-1] += data


def browser(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Headless Chromium (Debian's), as root: no sandbox, no GPU."""
    return subprocess.run([str(binary("chromium")), "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", "--no-first-run", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip


@pytest.fixture
def statements(
    clean_install: CleanInstall,
    prometheus_factory: Callable[..., PrometheusServer],
    tmp_path: Path,
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed `chargeback` on the fixed example's simulated traffic."""
    _, openmetrics = fixed_example_traffic(tmp_path)
    prometheus = prometheus_factory(openmetrics)
    examples = ROOT / "docs" / "examples"

    def run(command: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(clean_install.bin / "chargeback"), command, "--prometheus-url",
                               prometheus.url, "--pricing", str(examples / "tierpricing.yaml"),
                               "--report", str(examples / "usagereport-fixed.yaml"), "--ledger",
                               f"sqlite:///{tmp_path / 'ledger.db'}", *args], cwd=tmp_path,
                              capture_output=True, text=True, check=False)  # fmt: skip

    return run


def test_a_statement_renders_in_chromium_with_the_documents_totals(
    statements: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    work = tmp_path
    assert statements("report", "--format", "json", "--output", "report.json").returncode == 0
    document = json.loads((work / "report.json").read_text())
    team = document["byTeam"][0]["name"]
    for args in (("--output", "all.html"), ("--team", team, "--output", "team.html")):
        made = statements("statement", *args)
        assert made.returncode == 0, made.stderr

    for page, tokens, cost in (
        ("all.html", document["totals"]["tokens"], document["totals"]["cost"]),
        ("team.html", document["byTeam"][0]["tokens"], document["byTeam"][0]["cost"]),
    ):
        dom = browser("--dump-dom", f"file://{work / page}", cwd=work).stdout
        texts = Texts()
        texts.feed(dom)
        assert texts.by_id["total-cost"].strip() == f"{cost} {document['currency']}", page
        assert int(texts.by_id["total-tokens"].replace(",", "")) == tokens, page
        rows = [cells for cells in texts.tables["by-model"] if cells]  # the header has th only
        assert sum(Decimal(cells[2]) for cells in rows) == Decimal(cost), page
    assert team in (work / "team.html").read_text()

    ARTIFACTS.mkdir(exist_ok=True)
    browser(f"--screenshot={ARTIFACTS / 'statement.png'}", "--window-size=1100,1500",
            f"file://{work / 'team.html'}", cwd=work)  # fmt: skip
    assert (ARTIFACTS / "statement.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    browser(f"--print-to-pdf={ARTIFACTS / 'statement.pdf'}", "--no-pdf-header-footer",
            f"file://{work / 'team.html'}", cwd=work)  # fmt: skip
    assert (ARTIFACTS / "statement.pdf").read_bytes()[:5] == b"%PDF-"


def test_an_unknown_team_is_refused_with_the_teams_that_exist(
    statements: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    refused = statements("statement", "--team", "nobody")
    assert refused.returncode == 2
    assert "no usage of team 'nobody' in the period; teams with usage: cc-100" in refused.stderr
