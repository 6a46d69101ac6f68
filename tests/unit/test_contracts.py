"""Which contract a counter speaks, and how a report without source.labels reads it."""

from __future__ import annotations

from chargeback.api.report import UsageReportSpec
from chargeback.domain.contracts import Contract, Detected, apply, configured, detect

BARE = {"pricingRef": {"name": "p"},
        "period": {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"}}  # fmt: skip


def test_the_labels_present_tell_the_contract() -> None:
    assert detect(frozenset({"user", "tier", "model"})) is Contract.WORKSHOP
    assert detect(frozenset({"subscription", "cost_center"})) is Contract.SUBSCRIPTIONS
    assert detect(frozenset({"subscription", "tier"})) is Contract.WORKSHOP  # tier wins
    assert detect(frozenset()) is Contract.WORKSHOP


def test_subscriptions_are_the_plan_and_cost_centres_the_teams() -> None:
    spec = UsageReportSpec.model_validate(BARE)
    assert not configured(spec)
    found = Detected(Contract.SUBSCRIPTIONS, frozenset({"subscription", "cost_center",
                                                        "organization_id"}))  # fmt: skip
    read = apply(spec, found)
    assert read.source.labels.tier == "subscription"
    assert read.source.extra_labels == ("cost_center", "organization_id")
    assert read.attribution.team_label == "cost_center"
    assert "usage per subscription (no user label)" in found.message
    # A report that attributes teams itself keeps its way; no cost centre: no team label.
    teams = UsageReportSpec.model_validate({**BARE, "attribution": {"openshiftGroups": True}})
    assert apply(teams, found).attribution.team_label is None
    bare = apply(spec, Detected(Contract.SUBSCRIPTIONS, frozenset({"subscription", "user"})))
    assert (bare.source.extra_labels, bare.attribution.team_label) == ((), None)
    # The workshop contract changes nothing; explicit labels are never second-guessed.
    assert apply(spec, Detected(Contract.WORKSHOP, frozenset({"tier"}))) == spec
    mapped = UsageReportSpec.model_validate({**BARE, "source": {"labels": {"tier": "plan"}}})
    assert configured(mapped)


def test_a_preset_is_configured_and_says_which() -> None:
    assert Detected(Contract.CONFIGURED, preset="kong").message == "preset kong"
    assert Detected(Contract.CONFIGURED).message == "source.labels set by the report"
