"""Conditions and status writes, as pure functions."""

from __future__ import annotations

from chargeback.domain.conditions import Cond, merge, ready, status_changes

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"


def test_transition_time_moves_only_when_status_flips() -> None:
    first = merge([], [Cond("Priced", True, "Priced")], T0, 1)
    assert first[0]["lastTransitionTime"] == T0
    same = merge(first, [Cond("Priced", True, "Priced", "new message")], T1, 2)
    assert same[0]["lastTransitionTime"] == T0
    assert (same[0]["message"], same[0]["observedGeneration"]) == ("new message", 2)
    flipped = merge(same, [Cond("Priced", False, "NoPrice")], T1, 2)
    assert flipped[0]["lastTransitionTime"] == T1
    assert flipped[0]["status"] == "False"


def test_ready_takes_the_first_failing_blocking_condition() -> None:
    others = [Cond("Priced", True, "Priced"), Cond("DataComplete", False, "Gaps", "2 gaps"),
              Cond("Forecast", False, "NoHistory")]  # fmt: skip
    assert ready(others, ["Priced", "DataComplete"]) == Cond("Ready", False, "Gaps", "2 gaps")
    assert ready(others, ["Priced"]) == Cond("Ready", True, "Reconciled", "")


def test_a_refresh_that_changes_nothing_writes_nothing() -> None:
    current = {"totals": {"tokens": 5}, "lastRefreshTime": T0, "exports": ["a"]}
    desired = {"totals": {"tokens": 5}, "lastRefreshTime": T1, "exports": ["a"], "forecast": None}
    assert status_changes(current, desired) == {}


def test_any_real_change_writes_the_whole_status() -> None:
    current = {"totals": {"tokens": 5}, "lastRefreshTime": T0}
    desired = {"totals": {"tokens": 6}, "lastRefreshTime": T1, "forecast": None}
    assert status_changes(current, desired) == desired
    assert status_changes({}, {"forecast": {"total": 1}}) == {"forecast": {"total": 1}}
