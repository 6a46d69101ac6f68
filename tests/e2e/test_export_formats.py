"""The exporter seam: a new format is one module and one registration.

This module is that module: it registers a `totals` format, and the format appears in
`chargeback report --format`, at the operator's HTTP endpoint and in the export ConfigMaps.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from kubernetes import client

from chargeback.cli import main
from chargeback.domain import formats
from chargeback.domain.formats import ExportContext, Format
from chargeback.domain.money import format_money
from chargeback.domain.reports import ReportDocument
from tests.e2e.conftest import GROUP, VERSION, Live, Operator, condition, wait_ready
from tests.e2e.test_operator import PRICES, _iso, create_pricing, hand_cost, report_body


def render_totals(document: ReportDocument, _: ExportContext) -> str:
    """One line: the report, its tokens and its cost."""
    cost = format_money(document.cost, document.currency)
    return f"{document.report} {document.tokens} tokens {cost} {document.currency}\n"


TOTALS = Format("totals", "text/plain", render_totals)


@pytest.fixture
def totals_format() -> Iterator[Format]:
    yield formats.register(TOTALS)  # the one registration
    formats.unregister(TOTALS.name)


def test_a_registered_format_appears_in_the_cli_the_endpoint_and_the_exports(
    totals_format: Format, operator: Operator, live: Live, api_client: client.ApiClient,
    namespace: str, tmp_path: Path,
) -> None:  # fmt: skip
    pricing = create_pricing(api_client, live, "fmt")
    start, end = live.start_ms + 2 * 3_600_000, live.start_ms + 6 * 3_600_000
    body = report_body("totals", pricing, period={"start": _iso(start), "end": _iso(end)})
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "usagereports", body
    )
    tokens, cost = hand_cost(live, start, end, [(0, PRICES)])
    expected = f"{namespace}/totals {tokens} tokens {cost} USD\n"

    # The export ConfigMap holds every registered format, the new one included.
    report = wait_ready(api_client, namespace, "totals")
    # No source section: the counter's labels say which contract it speaks (here the workshop's).
    assert report["status"]["source"]["contract"] == "MaaSWorkshop"
    # How Prometheus was read is measured, and said (Debian's 2.42: closed range edges).
    assert condition(report, "SourceAvailable")["message"].endswith(
        ": range edges closed, no anchored ranges (probed)"
    )
    export = client.CoreV1Api(api_client).read_namespaced_config_map(
        report["status"]["exports"][0], namespace
    )
    assert set(export.data) == {"report.json", "report.csv", "report.focus", "report.totals"}
    assert export.data["report.totals"] == expected
    # FOCUS for finance, from the same document: its charges add up to the report's cost.
    charges = list(csv.DictReader(io.StringIO(export.data["report.focus"])))
    assert sum(Decimal(c["BilledCost"]) for c in charges) == Decimal(cost)
    assert {c["BillingAccountId"] for c in charges} == {namespace}

    # The endpoint serves it, for the finalised period and as the period last rendered.
    base = f"/reports/{namespace}/totals"
    assert operator.get(f"{base}/{_iso(start)}.totals") == (200, expected)
    assert operator.get(f"{base}/current.totals") == (200, expected)
    assert operator.get(f"{base}/current.nosuchformat")[0] == 404
    assert operator.get(f"{base}/current.focus") == (200, export.data["report.focus"])
    # Next to the exports, the statement of the period: of all teams, or of one.
    code, page = operator.get(f"{base}/{_iso(start)}.html?team=unassigned")
    assert code == 200
    assert f'<div class="value" id="total-cost">{cost} USD</div>' in page
    assert operator.get(f"{base}/current.html?team=nobody") == (
        404, "no usage of team 'nobody' in that period\n")  # fmt: skip

    # The CLI offers it, and renders the same text from Prometheus without a cluster.
    pricing_file, report_file = tmp_path / "pricing.yaml", tmp_path / "report.yaml"
    stored = client.CustomObjectsApi(api_client).get_cluster_custom_object(
        GROUP, VERSION, "tierpricings", pricing
    )
    manifest = {k: stored[k] for k in ("apiVersion", "kind", "spec")}
    pricing_file.write_text(yaml.safe_dump({**manifest, "metadata": {"name": pricing}}))
    metadata = {"name": "totals", "namespace": namespace}
    report_file.write_text(yaml.safe_dump({**body, "metadata": metadata}))
    args = ["report", "--prometheus-url", live.prometheus.url, "--pricing", str(pricing_file),
            "--report", str(report_file), "--no-gpu-costs"]  # fmt: skip
    result = CliRunner().invoke(main, [*args, "--format", "totals"])
    assert result.exit_code == 0, result.output
    assert result.output == expected
    refused = CliRunner().invoke(main, [*args, "--format", "nosuchformat"])
    assert refused.exit_code == 2
    assert "'table', 'json', 'csv', 'focus', 'totals'" in refused.output
    # Refreshes later serve the finalised period from the ledger; how it was read stays shown.
    again = wait_ready(api_client, namespace, "totals")
    assert again["status"]["source"] == report["status"]["source"]
