"""Conditions and status writes, as pure functions."""

from __future__ import annotations

from decimal import Decimal

from chargeback.domain.conditions import Cond, Reason, Type, merge, ready, status_changes
from chargeback.domain.contracts import Contract, Detected
from chargeback.domain.periods import Period
from chargeback.domain.reports import Line, ReportDocument
from chargeback.domain.usage import Gap
from chargeback.services.status import report_conditions, source_reading, summarize

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


def _document(**kwargs: object) -> ReportDocument:
    line = Line("ann", "research", "free", "m1", 1_000, Decimal("1.50"), 0, 0)
    fields: dict[str, object] = {
        "report": "ns/r", "period": Period(0, 3_600_000), "currency": "USD", "lines": (line,),
        "gaps": (), "pricing_versions": (), "data_through_ms": 3_600_000, **kwargs,
    }  # fmt: skip
    return ReportDocument(**fields)  # type: ignore[arg-type]


def test_a_complete_priced_document_is_ready_and_says_why_insight_is_missing() -> None:
    conds = {c.type: c for c in report_conditions(_document())}
    assert conds[Type.READY] == Cond(Type.READY, True, Reason.RECONCILED, "")
    assert conds[Type.DATA_COMPLETE].status is True
    assert conds[Type.PRICED].status is True
    assert conds[Type.COST_TO_VALUE] == Cond(
        Type.COST_TO_VALUE, False, Reason.UNAVAILABLE, "not computed"
    )


def test_gaps_and_unpriced_tokens_qualify_the_numbers_without_unreadying_them() -> None:
    unpriced = Line("bob", "", "gold", "m1", 500, Decimal(0), 500, 0)
    document = _document(
        lines=(_document().lines[0], unpriced), gaps=(Gap(0, 1_800_000, "scrape gap"),)
    )
    conds = {c.type: c for c in report_conditions(document)}
    assert conds[Type.READY].status is True
    assert (
        conds[Type.DATA_COMPLETE].message
        == "1970-01-01T00:00:00Z - 1970-01-01T00:30:00Z: scrape gap"
    )
    assert conds[Type.PRICED].reason is Reason.UNPRICED_USAGE
    assert conds[Type.PRICED].message.startswith("500 tokens have no price")


def test_the_summary_is_the_typed_status_the_crd_accepts() -> None:
    status = summarize(_document(), top_users=1, finals=[], exports=["r-0"], now_ms=7_200_000)
    dumped = status.model_dump(mode="json", by_alias=True)
    assert dumped["totals"] == {"tokens": 1000, "cost": "1.50", "unpricedTokens": 0}
    assert dumped["byTeam"] == [{"name": "research", "tokens": 1000, "cost": "1.50"}]
    assert dumped["period"] == {"start": "1970-01-01T00:00:00Z", "end": "1970-01-01T01:00:00Z"}
    assert dumped["lastRefreshTime"] == "1970-01-01T02:00:00Z"
    assert (dumped["costToValue"], dumped["forecast"]) == (None, None)


def test_a_finalised_period_keeps_the_source_reading_it_was_collected_with() -> None:
    # A finalised period is served from the ledger, where nothing is detected again: the next
    # refresh must not remove status.source (CI once read the status between the two).
    reading = source_reading(Detected(Contract.WORKSHOP, frozenset({"user", "tier"})))
    assert reading is not None
    stored = {"source": reading.model_dump(mode="json", by_alias=True)}
    assert source_reading(None, stored) == reading
    assert source_reading(None, {}) is None
    assert source_reading(None, {"source": {"contract": "Nonsense"}}) is None
