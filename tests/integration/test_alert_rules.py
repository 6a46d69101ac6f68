"""The budgets' alerting rules, checked and unit-tested by Prometheus' own promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from chargeback.api.budget import Budget
from chargeback.domain.alerts import budget_rules
from chargeback.testing.tools import binary

SERIES = 'namespace="team-ml",report="monthly",budget="gpu",scope="team",match="ml",currency="USD"'


def promtool(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary("promtool")), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, check=False)  # fmt: skip


def series(spent: str, projected: str) -> list[dict[str, str]]:
    """Input series of one budget (amount 100) minute by minute."""
    return [
        {"series": f"chargeback_budget_spent{{{SERIES}}}", "values": spent},
        {"series": f"chargeback_budget_amount{{{SERIES}}}", "values": "100x3"},
        {"series": f"chargeback_budget_projected{{{SERIES}}}", "values": projected},
    ]


def expected(rule: dict[str, Any], value: str, **labels: str) -> dict[str, Any]:
    """The alert promtool should see from ``rule`` at ``value``, with the series' labels."""
    series = dict(pair.split("=", 1) for pair in SERIES.split(","))
    annotations = {k: v.replace("{{ $value }}", value) for k, v in rule["annotations"].items()}
    return {
        "exp_labels": {**{k: v.strip('"') for k, v in series.items()}, **rule["labels"], **labels},
        "exp_annotations": annotations,
    }


def test_rules_fire_at_thresholds_and_on_projection(tmp_path: Path) -> None:
    budget = Budget.model_validate({"name": "gpu", "amount": "100", "scope": "team",
                                    "match": "ml", "thresholds": [80, 100]})  # fmt: skip
    groups = budget_rules("team-ml", "monthly", [budget])
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups))
    checked = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 3 rules found" in checked.stdout
    at80, at100, projection = groups["groups"][0]["rules"]

    # Minute by minute: spent 40 (projected 160), 85 (170), 100, 120; the amount stays 100.
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": series("40 85 100 120", "160 170 100 120"),
            "alert_rule_test": [
                # Projected past the amount before spending gets there: only the projection.
                {"eval_time": "0m", "alertname": "ChargebackBudgetProjectedOverrun",
                 "exp_alerts": [expected(projection, "160", team="ml")]},
                {"eval_time": "0m", "alertname": "ChargebackBudgetThreshold", "exp_alerts": []},
                {"eval_time": "1m", "alertname": "ChargebackBudgetThreshold",
                 "exp_alerts": [expected(at80, "85", team="ml")]},
                # Spent reaches the amount: both thresholds, and the projection is over.
                {"eval_time": "2m", "alertname": "ChargebackBudgetThreshold",
                 "exp_alerts": [expected(at80, "100"), expected(at100, "100")]},
                {"eval_time": "2m", "alertname": "ChargebackBudgetProjectedOverrun",
                 "exp_alerts": []},
            ],
        }],
    }  # fmt: skip
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_steady_budget_raises_no_alert(tmp_path: Path) -> None:
    budget = Budget.model_validate({"name": "gpu", "amount": "100", "scope": "team",
                                    "match": "ml"})  # fmt: skip
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(budget_rules("team-ml", "monthly",
                                                                     [budget])))  # fmt: skip
    tests = {
        "rule_files": ["rules.yaml"],
        "tests": [{
            "interval": "1m",
            "input_series": series("10 20 30 40", "80 80 80 80"),
            "alert_rule_test": [
                {"eval_time": f"{m}m", "alertname": name, "exp_alerts": []}
                for m in range(4)
                for name in ("ChargebackBudgetThreshold", "ChargebackBudgetProjectedOverrun")
            ],
        }],
    }  # fmt: skip
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
