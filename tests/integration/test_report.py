"""`chargeback report` end to end: real Prometheus, simulator ground truth priced by hand."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from chargeback.testing.simulator import HOUR_MS
from tests.integration.conftest import T0, Traffic

START, END = T0 + 24 * HOUR_MS, T0 + 48 * HOUR_MS
CHANGE = T0 + 36 * HOUR_MS
PRICES_V1 = {"free": "0.005", "premium": "0.008"}  # enterprise deliberately unpriced
PRICES_V2 = {"free": "0.007", "premium": "0.009"}
OVERRIDE = ("premium", "llama-3-70b", "0.020")
INCLUDED_FREE = 20_000
UNIT = 1000


def pricing_doc(prices: dict[str, str], effective: str | None) -> dict[str, Any]:
    tiers = []
    for tier, price in prices.items():
        entry: dict[str, Any] = {"name": tier, "price": price}
        if tier == "free":
            entry["includedTokens"] = INCLUDED_FREE
        if tier == OVERRIDE[0]:
            entry["models"] = [{"name": OVERRIDE[1], "price": OVERRIDE[2]}]
        tiers.append(entry)
    spec: dict[str, Any] = {"currency": "EUR", "tokensPerUnit": UNIT, "tiers": tiers}
    if effective:
        spec["effectiveFrom"] = effective
    return {"apiVersion": "chargeback.dev/v1alpha1", "kind": "TierPricing",
            "metadata": {"name": "maas"}, "spec": spec}  # fmt: skip


def report_doc(team_users: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "chargeback.dev/v1alpha1",
        "kind": "UsageReport",
        "metadata": {"name": "day2", "namespace": "finance"},
        "spec": {
            "pricingRef": {"name": "maas"},
            "attribution": {"teams": [{"name": "core", "users": team_users}]},
            "period": {"start": "2026-01-02T00:00:00Z", "end": "2026-01-03T00:00:00Z"},
        },
    }


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chargeback", "report", *args],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


def hand_priced(traffic: Traffic, team_users: set[str], *, versioned: bool) -> dict[str, Any]:
    """The expected lines, computed from the simulator's truth without the product's code."""
    truth = traffic.sim.truth(START, END)
    exact: dict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)
    tokens: dict[tuple[str, str, str, str], int] = defaultdict(int)
    unpriced: dict[tuple[str, str, str, str], int] = defaultdict(int)
    allowance: dict[str, int] = defaultdict(lambda: INCLUDED_FREE)
    for (user, tier, model, bucket), count in sorted(truth.items(), key=lambda i: (i[0][3], i[0])):
        key = (user, "core" if user in team_users else "unassigned", tier, model)
        tokens[key] += count
        prices = PRICES_V2 if versioned and bucket >= CHANGE else PRICES_V1
        if tier not in prices:
            unpriced[key] += count
            continue
        price = Decimal(prices[tier])
        if (tier, model) == OVERRIDE[:2]:
            price = Decimal(OVERRIDE[2])
        free = 0
        if tier == "free":
            free = min(allowance[user], count)
            allowance[user] -= free
        exact[key] += Decimal(count - free) * price / UNIT
    lines = {
        key: (tokens[key], str(exact[key].quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)),
              unpriced[key])
        for key in tokens
    }  # fmt: skip
    return {
        "lines": lines,
        "tokens": sum(tokens.values()),
        "cost": str(sum(Decimal(v[1]) for v in lines.values())),
        "unpriced": sum(unpriced.values()),
    }


def write_report(tmp_path: Path, traffic: Traffic) -> tuple[Path, set[str]]:
    """The day-2 report manifest with a team of seven active users, and that team."""
    users = sorted({k[0] for k in traffic.sim.truth(START, END)})
    team = set(users[:7])
    report = tmp_path / "report.yaml"
    report.write_text(yaml.safe_dump(report_doc(sorted(team))))
    return report, team


@pytest.fixture
def files(tmp_path: Path, traffic: Traffic) -> dict[str, Any]:
    report, team = write_report(tmp_path, traffic)
    single = tmp_path / "pricing.yaml"
    single.write_text(yaml.safe_dump(pricing_doc(PRICES_V1, None)))
    versioned = tmp_path / "pricing-versions.yaml"
    versioned.write_text(yaml.safe_dump_all([
        pricing_doc(PRICES_V1, "2025-12-01T00:00:00Z"),
        pricing_doc(PRICES_V2, "2026-01-02T12:00:00Z"),
    ]))  # fmt: skip
    return {"report": report, "single": single, "versioned": versioned, "team": team}


def lines_of(document: dict[str, Any]) -> dict[tuple[str, str, str, str], tuple[int, str, int]]:
    return {
        (ln["user"], ln["team"], ln["tier"], ln["model"]): (ln["tokens"], ln["cost"],
                                                            ln["unpricedTokens"])
        for ln in document["lines"]
    }  # fmt: skip


@pytest.mark.parametrize("versioned", [False, True], ids=["one-price", "price-change-mid-period"])
def test_report_json_equals_hand_priced_ground_truth(
    traffic: Traffic, files: dict[str, Any], versioned: bool
) -> None:
    pricing = files["versioned" if versioned else "single"]
    result = run("--prometheus-url", traffic.prometheus.url, "--pricing", str(pricing),
                 "--report", str(files["report"]), "--format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    want = hand_priced(traffic, files["team"], versioned=versioned)
    assert document["period"] == {"start": "2026-01-02T00:00:00Z", "end": "2026-01-03T00:00:00Z"}
    assert document["currency"] == "EUR"
    assert lines_of(document) == want["lines"]
    assert document["totals"] == {"tokens": want["tokens"], "cost": want["cost"],
                                  "unpricedTokens": want["unpriced"]}  # fmt: skip
    assert want["unpriced"] > 0  # enterprise has no price: flagged, not zero
    assert document["finalized"] is True
    assert document["dataComplete"] is True
    assert [v["version"] for v in document["pricingVersions"]] == ([1, 2] if versioned else [1])
    assert {t["name"] for t in document["byTeam"]} == {"core", "unassigned"}


def test_finalised_period_is_byte_identical_after_a_price_change(
    traffic: Traffic, files: dict[str, Any], tmp_path: Path
) -> None:
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    common = ["--prometheus-url", traffic.prometheus.url, "--report", str(files["report"]),
              "--ledger", ledger]  # fmt: skip
    first = run(*common, "--pricing", str(files["single"]), "--format", "json")
    assert first.returncode == 0, first.stderr
    focus = run(*common, "--pricing", str(files["single"]), "--format", "focus")
    assert focus.returncode == 0, focus.stderr
    again = run(*common, "--pricing", str(files["versioned"]), "--format", "json")
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    # FOCUS for finance too: the same bytes, to the cent of the report.
    assert run(*common, "--pricing", str(files["versioned"]), "--format", "focus").stdout == (
        focus.stdout)  # fmt: skip
    billed = sum(Decimal(r["BilledCost"]) for r in csv.DictReader(io.StringIO(focus.stdout)))
    assert str(billed) == json.loads(first.stdout)["totals"]["cost"]
    as_csv = run(*common, "--pricing", str(files["versioned"]), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert list(rows[0])[:7] == ["user", "team", "tier", "model", "tokenType", "tokens", "cost"]
    total = sum(Decimal(r["cost"]) for r in rows)
    assert str(total) == json.loads(first.stdout)["totals"]["cost"]


def test_table_format_and_clear_errors(
    traffic: Traffic, files: dict[str, Any], tmp_path: Path
) -> None:
    table = run("--prometheus-url", traffic.prometheus.url, "--pricing", str(files["single"]),
                "--report", str(files["report"]))  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "Unpriced tokens" in table.stdout
    assert "By team" in table.stdout
    wrong = tmp_path / "other.yaml"
    doc = pricing_doc(PRICES_V1, None)
    doc["metadata"]["name"] = "other"
    wrong.write_text(yaml.safe_dump(doc))
    mismatch = run("--prometheus-url", traffic.prometheus.url, "--pricing", str(wrong),
                   "--report", str(files["report"]))  # fmt: skip
    assert mismatch.returncode == 2
    assert "names TierPricing 'maas'" in mismatch.stderr
    doc = pricing_doc(PRICES_V1, None)
    doc["spec"]["tiers"][0]["price"] = 0.005
    wrong.write_text(yaml.safe_dump(doc))
    bad = run("--prometheus-url", traffic.prometheus.url, "--pricing", str(wrong),
              "--report", str(files["report"]))  # fmt: skip
    assert bad.returncode == 2
    assert "spec.tiers.0.price" in bad.stderr
