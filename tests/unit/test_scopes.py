"""Which usage a report may see: scopes ANDed into sources, decided purely."""

from __future__ import annotations

import pytest

from chargeback.api.scope import UsageScopeSpec
from chargeback.api.source import SourceSpec
from chargeback.domain.conditions import Reason
from chargeback.domain.scopes import Denied, Grant, authorize


def scope(**spec: object) -> UsageScopeSpec:
    return UsageScopeSpec.model_validate(spec)


SCOPES = [
    ("team-a", scope(namespaces=["tenant-a"], selector='cost_center="a"')),
    (
        "by-label",
        scope(
            namespaceSelector={"matchLabels": {"tenant": "b"}},
            selector='cost_center="b"',
            source={"metric": "tokens_total", "extraLabels": ["cost_center"]},
        ),
    ),
    ("platform", scope(namespaces=["platform"], unrestricted=True)),
]


def test_the_scope_is_anded_into_a_match_everything_report() -> None:
    grant = authorize(SourceSpec(selector=""), "tenant-a", {}, SCOPES)
    assert grant == Grant(SourceSpec(selector='model!="", cost_center="a"'), "team-a",
                          'cost_center="a"')  # fmt: skip


def test_a_report_narrows_but_cannot_widen() -> None:
    wide = SourceSpec(selector='cost_center=~".*", user="ann"')
    grant = authorize(wide, "tenant-a", {}, SCOPES)
    assert isinstance(grant, Grant)
    assert grant.source.selector == 'model!="", cost_center="a", cost_center=~".*", user="ann"'
    other = authorize(SourceSpec(selector='cost_center="b"'), "tenant-a", {}, SCOPES)
    assert isinstance(other, Grant)
    assert other.source.selector == 'model!="", cost_center="a", cost_center="b"'  # matches none


def test_scopes_grant_by_label_with_their_own_source() -> None:
    grant = authorize(SourceSpec(extra_labels=("team",)), "ns-x", {"tenant": "b"}, SCOPES)
    assert isinstance(grant, Grant)
    assert grant.source.metric == "tokens_total"
    assert grant.source.extra_labels == ("cost_center", "team")
    assert grant.scope == "by-label"


def test_a_tenant_cannot_choose_the_metric_or_label_mapping() -> None:
    attack = SourceSpec(metric="container_network_transmit_bytes_total",
                        labels={"user": "pod", "tier": "namespace"})  # type: ignore[arg-type]  # fmt: skip
    denied = authorize(attack, "tenant-a", {}, SCOPES)
    assert isinstance(denied, Denied)
    assert denied.reason is Reason.SOURCE_NOT_ALLOWED
    assert "UsageScope team-a" in denied.message
    relabel = authorize(SourceSpec(labels={"user": "pod"}), "tenant-a", {}, SCOPES)  # type: ignore[arg-type]
    assert isinstance(relabel, Denied)


def test_a_scope_on_another_gateway_serves_reports_that_set_no_source() -> None:
    kong = [("kong", scope(namespaces=["shop"], selector='workspace="shop"',
                           source={"preset": "kong"}))]  # fmt: skip
    grant = authorize(SourceSpec(), "shop", {}, kong)
    assert isinstance(grant, Grant)
    assert grant.source.metric == "ai_llm_tokens_total"
    assert grant.source.labels.user == "consumer"
    # The workshop default `model!=""` is not added: Kong's series have no `model` label.
    assert grant.source.selector == 'ai_model!="", workspace="shop"'
    narrowed = authorize(SourceSpec.model_validate({"selector": 'consumer="ann"'}), "shop", {},
                         kong)  # fmt: skip
    assert isinstance(narrowed, Grant)
    assert narrowed.source.selector == 'ai_model!="", workspace="shop", consumer="ann"'
    same = authorize(SourceSpec.model_validate({"preset": "kong", "selector": 'consumer="ann"'}),
                     "shop", {}, kong)  # fmt: skip
    assert isinstance(same, Grant)
    assert same.source.selector == narrowed.source.selector
    for other in ({"preset": "vllm"}, {"tokenTypeLabel": "t", "tokenTypes": {"a": "input"}}):
        denied = authorize(SourceSpec.model_validate(other), "shop", {}, kong)
        assert isinstance(denied, Denied), other


def test_no_scope_or_two_scopes_see_nothing_and_say_why() -> None:
    none = authorize(SourceSpec(), "tenant-z", {}, SCOPES)
    assert none == Denied(Reason.NO_SCOPE, "no UsageScope grants namespace tenant-z any usage; "
                          "a cluster administrator grants it with a UsageScope")  # fmt: skip
    both = authorize(SourceSpec(), "tenant-a", {"tenant": "b"}, SCOPES)
    assert isinstance(both, Denied)
    assert both.reason is Reason.SCOPE_CONFLICT
    assert "by-label, team-a" in both.message


def test_administrators_namespaces_see_everything_with_their_own_source() -> None:
    own = SourceSpec(metric="my_counter", selector="")
    assert authorize(own, "platform", {}, SCOPES) == Grant(own, "platform", "")
    assert authorize(own, "ops", {}, SCOPES, frozenset({"ops"})) == Grant(own, None, "")


def test_a_scope_needs_namespaces() -> None:
    with pytest.raises(ValueError, match="set namespaces or namespaceSelector"):
        scope(selector='cost_center="a"')
