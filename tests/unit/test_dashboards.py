"""Generated dashboards: golden JSON, unique ids, a valid grid, prices only from the pricing."""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal
from pathlib import Path

import yaml
from click.testing import CliRunner

from chargeback.api.pricing import TierPricingSpec
from chargeback.api.report import UsageReportSpec
from chargeback.api.source import SourceSpec
from chargeback.cli import main
from chargeback.domain.contracts import Contract, Detected, apply
from chargeback.domain.dashboards import build_dashboard, panel_queries

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "dashboard-maas-default.json"


def example_pricing() -> TierPricingSpec:
    document = yaml.safe_load((ROOT / "docs" / "examples" / "tierpricing.yaml").read_text())
    return TierPricingSpec.model_validate(document["spec"])


def test_dashboard_matches_golden_file() -> None:
    """Refresh with `make golden` after an intended change, and read the diff."""
    rendered = json.dumps(build_dashboard("maas-default", example_pricing(), SourceSpec(),
                                          "authorized_hits"), indent=2) + "\n"  # fmt: skip
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(rendered)
    assert rendered == GOLDEN.read_text(), "dashboard changed: run `make golden` and review"


def test_panels_have_unique_ids_and_a_valid_grid() -> None:
    board = build_dashboard("maas-default", example_pricing(), SourceSpec(), "authorized_hits")
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    occupied: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}  # fmt: skip
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells


def test_the_only_prices_are_the_pricings() -> None:
    pricing = example_pricing()
    allowed = {Decimal(t.price) / pricing.tokens_per_unit for t in pricing.tiers}
    allowed |= {Decimal(m.price) / pricing.tokens_per_unit for t in pricing.tiers for m in t.models}
    board = build_dashboard("maas-default", pricing, SourceSpec(), "authorized_hits")
    seen = set()
    for title, expr in panel_queries(board):
        for literal in re.findall(r"\* ([0-9.]+)", expr):
            seen.add(Decimal(literal))
        assert " + " not in expr, f"{title}: `+` would blank the result when a series is absent"
    assert seen == allowed  # every tier and override priced, nothing else
    units = {
        p["fieldConfig"]["defaults"].get("unit") for p in board["panels"] if "fieldConfig" in p
    }
    assert "currencyUSD" in units


def test_dashboards_cli_writes_json_for_a_report_source(tmp_path: Path) -> None:
    examples = ROOT / "docs" / "examples"
    pricing, report = examples / "tierpricing.yaml", examples / "usagereport-monthly.yaml"
    args = ["dashboards", "--pricing", str(pricing), "--report", str(report)]
    result = CliRunner().invoke(main, [*args, "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    board = json.loads((tmp_path / "chargeback-maas-default.json").read_text())
    names = [v["name"] for v in board["templating"]["list"]]
    assert names == ["datasource", "user", "tier", "model", "report", "limitador_namespace"]
    perses = CliRunner().invoke(main, [*args, "--output", str(tmp_path), "--kinds", "perses"])
    assert perses.exit_code == 0, perses.output
    resource = json.loads((tmp_path / "chargeback-maas-default.perses.json").read_text())
    assert (resource["kind"], resource["metadata"]) == (
        "Dashboard", {"name": "chargeback-maas-default", "project": "chargeback"})  # fmt: skip
    assert len(resource["spec"]["panels"]) == len(board["panels"]) - 2  # Grafana has 2 rows
    bad = CliRunner().invoke(main, ["dashboards", "--pricing", str(report),
                                    "--output", str(tmp_path)])  # fmt: skip
    assert bad.exit_code == 2
    assert "expected kind TierPricing, found UsageReport" in bad.output


def test_maas_subscription_counters_get_subscription_and_cost_centre_variables() -> None:
    usage = UsageReportSpec.model_validate({"pricingRef": {"name": "p"},
                                            "schedule": {"interval": "monthly"}})  # fmt: skip
    present = frozenset({"subscription", "cost_center", "organization_id"})
    detected = apply(usage, Detected(Contract.SUBSCRIPTIONS, present))
    board = build_dashboard("maas", example_pricing(), detected.source, "authorized_hits")
    shown = {v["name"]: v["label"] for v in board["templating"]["list"]}
    assert shown["tier"] == "Subscription"
    assert shown["cost_center"] == "Cost center"
    assert shown["organization_id"] == "Organization id"
    tier_variable = next(v for v in board["templating"]["list"] if v["name"] == "tier")
    assert tier_variable["query"].endswith(", subscription)")
    queries = dict(panel_queries(board))
    assert 'subscription=~"$tier"' in queries["Tokens in range"]
    assert 'cost_center=~"$cost_center"' in queries["Tokens in range"]
