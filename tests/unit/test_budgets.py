"""Budgets: spending conserves, crossings are announced once per period, run-rate projections."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chargeback.api.budget import Budget
from chargeback.api.report import UsageReportSpec
from chargeback.cli import main
from chargeback.domain.alerts import budget_rules
from chargeback.domain.budgets import Announced, read, run_rate, spent_in_scope
from chargeback.domain.periods import Period
from chargeback.domain.reports import Line, ReportDocument
from chargeback.services import budgets as service

HOUR = 3_600_000
PERIOD = Period(0, 100 * HOUR)
TEAMS, USERS = ["ml", "web", "ops"], ["ana", "bo", "cy", "di"]
cents = st.integers(0, 50_000).map(lambda c: Decimal(c) / 100)


def document(lines: list[Line], through_ms: int = PERIOD.end_ms) -> ReportDocument:
    return ReportDocument(report="ns/r", period=PERIOD, currency="USD", lines=tuple(lines),
                          gaps=(), pricing_versions=(), data_through_ms=through_ms)  # fmt: skip


def line(user: str, team: str, cost: Decimal, model: str = "granite") -> Line:
    return Line(user, team, "premium", model, 1000, cost, 0, 0)


lines_strategy = st.lists(
    st.builds(line, st.sampled_from(USERS), st.sampled_from(TEAMS), cents), max_size=30
)


def budget(**fields: object) -> Budget:
    return Budget.model_validate({"name": "b", "amount": "100", **fields})


@settings(max_examples=200, deadline=None)
@given(lines_strategy)
def test_spending_conserves_the_report_total(lines: list[Line]) -> None:
    """A report-wide budget spends the report's total; team budgets partition it."""
    doc = document(lines)
    assert spent_in_scope(doc, budget()) == doc.cost
    per_team = sum(spent_in_scope(doc, budget(scope="team", match=t)) for t in TEAMS)
    assert per_team == doc.cost
    per_user = sum(spent_in_scope(doc, budget(scope="user", match=u)) for u in USERS)
    assert per_user == doc.cost


@settings(max_examples=200, deadline=None)
@given(st.lists(cents, min_size=1, max_size=12), st.lists(st.integers(1, 300), min_size=1,
       max_size=5, unique=True))  # fmt: skip
def test_each_crossing_is_announced_exactly_once(
    steps: list[Decimal], thresholds: list[int]
) -> None:
    """Spending that grows refresh after refresh: every threshold reached is announced once,
    through the status as the API server stores it (what a restarted operator reads back)."""
    b = budget(amount="500", thresholds=thresholds, projection=False)
    stored: dict[str, object] = {}
    announced: list[int] = []
    spent = Decimal(0)
    for step in steps:
        spent += step
        doc = document([line("ana", "ml", spent)])
        found = service.readings([b], doc, stored)
        announced += found[0].new_crossings
        # And a refresh with the same numbers says nothing new.
        stored = _stored(found)
        assert service.readings([b], doc, stored)[0].new_crossings == ()
    expected = sorted(t for t in thresholds if spent * 100 >= 500 * t)
    assert sorted(announced) == expected
    assert len(announced) == len(set(announced))


def _stored(found: list[object]) -> dict[str, object]:
    statuses = service.statuses(found, "USD")  # type: ignore[arg-type]
    return {
        "period": {"start": "1970-01-01T00:00:00Z", "end": "1970-01-05T04:00:00Z"},
        "budgets": [s.model_dump(mode="json", by_alias=True, exclude_none=True) for s in statuses],
    }


def test_a_new_period_starts_from_nothing_announced() -> None:
    b = budget(thresholds=[50])
    doc = document([line("ana", "ml", Decimal(60))])
    stored = _stored(service.readings([b], doc, {}))
    stored["period"] = {"start": "1969-12-31T00:00:00Z"}
    assert service.readings([b], doc, stored)[0].new_crossings == (50,)


def test_status_condition_and_events_of_a_crossing() -> None:
    b = budget(name="gpu", scope="team", match="ml", amount="200.00")
    doc = document([line("ana", "ml", Decimal("170.00")), line("bo", "web", Decimal(500))])
    (reading,) = read([b], doc, {"gpu": Announced(frozenset({50}))})
    assert (reading.spent, reading.remaining, reading.percent) == (
        Decimal("170.00"), Decimal("30.00"), Decimal("85.0"))  # fmt: skip
    assert reading.crossed == (50, 80)
    assert reading.new_crossings == (80,)
    assert reading.state == "warning"
    (event,) = service.events([reading], "USD")
    assert event.reason == "BudgetThresholdReached"
    assert event.message == ("budget gpu (team ml) reached 80%: 170.00 of 200.00 USD spent "
                             "(85.0%)")  # fmt: skip
    cond = service.condition([reading], "USD")
    assert (cond.status, cond.reason) == (True, "ThresholdCrossed")
    (over,) = read([b], document([line("ana", "ml", Decimal("200.00"))]), {})
    assert over.state == "exceeded"
    assert over.remaining == 0
    assert service.condition([over], "USD").reason == "BudgetExceeded"
    assert [e.reason for e in service.events([over], "USD")] == [
        "BudgetThresholdReached", "BudgetThresholdReached", "BudgetExceeded"]  # fmt: skip


def test_a_tiny_amount_and_a_large_spend_still_fit_the_status() -> None:
    b = budget(amount="0.000000000001")
    (reading,) = read([b], document([line("ana", "ml", Decimal("9" * 25))]), {})
    assert reading.percent == Decimal("999999999.0")
    assert reading.state == "exceeded"
    service.statuses([reading], "USD")  # validates against the CRD's bounds


def test_run_rate_projection() -> None:
    # Too early: under 1/20 of the period (5 h of 100 h).
    assert run_rate(Decimal(10), 0, 100 * HOUR, 4 * HOUR) is None
    assert run_rate(Decimal(10), 0, 100 * HOUR, 10 * HOUR) == Decimal(100)
    assert run_rate(Decimal(10), 0, 100 * HOUR, 200 * HOUR) == Decimal(10)
    # Steady traffic that will pass 100 at hour 80: projected before the crossing.
    b = budget(amount="100")
    (early,) = read([b], document([line("ana", "ml", Decimal(25))], 20 * HOUR), {})
    assert early.overrun
    assert early.new_projection
    assert early.projected == Decimal("125.00")
    assert early.exceeds_at_ms == 80 * HOUR
    assert early.state == "warning"
    assert service.condition([early], "USD").reason == "ProjectedToExceed"
    # Traffic that will not pass it: no projection alert.
    (calm,) = read([b], document([line("ana", "ml", Decimal(15))], 20 * HOUR), {})
    assert not calm.overrun
    assert not calm.new_projection
    assert calm.projected == Decimal("75.00")
    # Announced once per period, even when the projection wavers.
    (again,) = read([b], document([line("ana", "ml", Decimal(30))], 21 * HOUR),
                    {"b": Announced(projected_overrun=True)})  # fmt: skip
    assert again.overrun
    assert not again.new_projection


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"amount": "0"}, "more than zero"),
        ({"amount": "0.000"}, "more than zero"),
        ({"scope": "team"}, "match names"),
        ({"match": "ml"}, "match names"),
        ({"thresholds": [80, 80]}, "repeat"),
        ({"scope": "tenant", "match": "x"}, "scope"),
    ],
)
def test_invalid_budgets_are_refused_without_a_cluster(
    fields: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        budget(**fields)


def test_duplicate_budgets_are_refused_without_a_cluster() -> None:
    spec = {"pricingRef": {"name": "p"}, "period": {"start": "2026-01-01T00:00:00Z",
            "end": "2026-02-01T00:00:00Z"}}  # fmt: skip
    twice = [{"name": "a", "amount": "1", "scope": "team", "match": "ml"},
             {"name": "b", "amount": "2", "scope": "team", "match": "ml"}]  # fmt: skip
    with pytest.raises(ValidationError, match="duplicate budget scope and match"):
        UsageReportSpec.model_validate({**spec, "budgets": twice})


def test_alert_rules_name_the_team_and_threshold() -> None:
    b = budget(name="gpu", scope="team", match="research{{x}}", thresholds=[80, 100])
    (group,) = budget_rules("ns", "r", [b])["groups"]
    alerts = [(r["alert"], r["labels"].get("threshold")) for r in group["rules"]]
    assert alerts == [("ChargebackBudgetThreshold", "80"), ("ChargebackBudgetThreshold", "100"),
                      ("ChargebackBudgetProjectedOverrun", None)]  # fmt: skip
    first = group["rules"][0]
    assert first["labels"]["team"] == 'research{{ "{{" }}x}}'  # templates cannot run
    assert first["labels"]["severity"] == "warning"
    assert group["rules"][1]["labels"]["severity"] == "critical"
    assert "never blocked" in first["annotations"]["runbook"]
    assert budget_rules("ns", "r", []) == {"groups": []}


def test_alerts_command_names_what_is_missing(tmp_path: Path) -> None:
    """A report without budgets, or an invalid one, is a CLI error naming the option/field."""
    report = {"apiVersion": "chargeback.dev/v1alpha1", "kind": "UsageReport",
              "metadata": {"name": "r", "namespace": "ns"},
              "spec": {"pricingRef": {"name": "p"}, "schedule": {"interval": "daily"}}}  # fmt: skip
    path = tmp_path / "report.yaml"
    path.write_text(yaml.safe_dump(report))
    result = CliRunner().invoke(main, ["alerts", "--report", str(path)])
    assert result.exit_code == 2
    assert "has no spec.budgets" in result.output
    report["spec"]["budgets"] = [{"name": "b", "amount": "0"}]  # type: ignore[index]
    path.write_text(yaml.safe_dump(report))
    result = CliRunner().invoke(main, ["alerts", "--report", str(path)])
    assert result.exit_code == 2
    assert "spec.budgets.0" in result.output
    assert "amount must be more than zero" in result.output
    report["spec"]["budgets"] = [{"name": "b", "amount": "5", "thresholds": [90]}]  # type: ignore[index]
    path.write_text(yaml.safe_dump(report))
    result = CliRunner().invoke(main, ["alerts", "--report", str(path)])
    assert result.exit_code == 0, result.output
    (group,) = yaml.safe_load(result.output)["groups"]
    assert [r["alert"] for r in group["rules"]] == ["ChargebackBudgetThreshold",
                                                    "ChargebackBudgetProjectedOverrun"]  # fmt: skip
