"""Token types and presets: identities kept, prices looked up most specific first, cached input
taken out of input, sums conserved."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from chargeback.api.pricing import TierPricingSpec
from chargeback.api.report import Attribution
from chargeback.api.source import SourceSpec
from chargeback.domain.attribution import TeamResolver
from chargeback.domain.periods import Period
from chargeback.domain.pricing import PriceBook, PriceVersion
from chargeback.domain.reports import build_document
from chargeback.domain.selectors import source_matchers
from chargeback.domain.series import aggregate, series_key
from chargeback.domain.usage import UsageRow


def test_sources_keep_the_ledger_ids_they_had_before_token_types() -> None:
    # Ids computed by the release before token types existed: their ledgers must stay theirs.
    assert SourceSpec().source_id() == "794618d8632d2f51"
    assert SourceSpec(selector='a="b"', extra_labels=("x",)).source_id() == "e942540d88b11603"
    typed = SourceSpec.model_validate({"preset": "kong"})
    assert typed.source_id() != SourceSpec().source_id()


def test_a_preset_fills_only_what_the_source_leaves_unset() -> None:
    source = SourceSpec.model_validate(
        {"preset": "envoy-ai-gateway", "labels": {"user": "x_tenant"}, "selector": 'a="b"'}
    )
    assert (source.labels.user, source.labels.model) == ("x_tenant", "gen_ai_request_model")
    assert source.selector == 'a="b"'
    assert source.metric == "gen_ai_client_token_usage_sum"
    assert source.default_tier == "default"
    # Only the listed kinds are asked of Prometheus: never a total beside its parts.
    typed = next(m for m in source_matchers(source) if m.label == "gen_ai_token_type")
    assert typed.render() == 'gen_ai_token_type=~"cached_input|input|output"'


def test_one_counter_per_token_type_is_one_ledger_source_each() -> None:
    vllm = SourceSpec.model_validate({"preset": "vllm"})
    parts = vllm.parts()
    assert [p.metric for p in parts] == [
        "vllm:generation_tokens_total", "vllm:prompt_tokens_total"]  # fmt: skip
    assert len({p.source_id() for p in parts}) == 2
    assert SourceSpec().parts() == (SourceSpec(),)
    with pytest.raises(ValidationError, match="metricTokenTypes replaces metric"):
        SourceSpec.model_validate({"preset": "vllm", "metric": "x_total"})


def test_cached_input_is_taken_out_of_the_input_of_the_same_dimensions() -> None:
    source = SourceSpec.model_validate({"preset": "envoy-ai-gateway"})

    def series(user: str, kind: str, replica: str) -> tuple[tuple[str, str], ...]:
        return series_key({"user_id": user, "gen_ai_request_model": "m",
                           "gen_ai_token_type": kind, "pod": replica}.items())  # fmt: skip

    usage = [(series("a", "input", "0"), 70), (series("a", "input", "1"), 30),
             (series("a", "cached_input", "0"), 40), (series("a", "output", "0"), 5),
             (series("b", "cached_input", "0"), 9)]  # fmt: skip
    totals = aggregate(usage, source)
    assert totals == {
        ("a", "default", "m", (), "input"): 60,
        ("a", "default", "m", (), "cached_input"): 40,
        ("a", "default", "m", (), "output"): 5,
        ("b", "default", "m", (), "cached_input"): 9,
    }


PRICING = TierPricingSpec.model_validate({
    "currency": "USD", "tokensPerUnit": 1000,
    "tiers": [
        {"name": "default", "inputPrice": "1", "outputPrice": "3",
         "models": [{"name": "big", "price": "10"}, {"name": "odd", "outputPrice": "7"}]},
        {"name": "flat", "price": "2"},
    ],
})  # fmt: skip


@pytest.mark.parametrize(
    ("tier", "model", "kind", "expected"),
    [
        ("default", "small", "input", "1"),
        ("default", "small", "output", "3"),
        ("default", "small", "cached_input", None),  # no price for it anywhere: unpriced
        ("default", "small", "total", None),
        ("default", "big", "input", "10"),  # the model's price beats the tier's input price
        ("default", "odd", "output", "7"),
        ("default", "odd", "input", "1"),
        ("flat", "any", "cached_input", "2"),
        ("other", "any", "total", None),
    ],
)
def test_the_most_specific_price_wins(
    tier: str, model: str, kind: str, expected: str | None
) -> None:
    price = PriceVersion(1, 0, PRICING).price(tier, model, kind)
    assert price == (None if expected is None else Decimal(expected))


KINDS = st.sampled_from(["input", "output", "cached_input", "total"])
ROWS = st.lists(
    st.builds(lambda b, u, m, k, t: UsageRow(b * 3_600_000, u, "default", m, (), t, k),
              st.integers(0, 23), st.sampled_from(["a", "b"]), st.sampled_from(["big", "odd"]),
              KINDS, st.integers(1, 10**9)),
    max_size=40,
)  # fmt: skip


@given(ROWS)
def test_token_types_conserve_tokens_and_money(rows: list[UsageRow]) -> None:
    document = build_document(
        report="r", period=Period(0, 86_400_000), usage=rows,
        book=PriceBook([PriceVersion(1, 0, PRICING)]), teams=TeamResolver(Attribution(), {}),
        data_through_ms=86_400_000,
    )  # fmt: skip
    assert document.tokens == sum(r.tokens for r in rows)
    by_type = document.breakdown("token_type")
    assert sum(b.tokens for b in by_type) == document.tokens
    assert sum((b.cost for b in by_type), Decimal(0)) == document.cost
    for kind in ("input", "output", "cached_input", "total"):
        lines = [ln for ln in document.lines if ln.token_type == kind]
        assert sum(ln.tokens for ln in lines) == sum(r.tokens for r in rows if r.token_type == kind)
    # odd's cached input and total have no price: unpriced, never free.
    unpriced = sum(r.tokens for r in rows if r.model == "odd" and r.token_type in
                   ("cached_input", "total"))  # fmt: skip
    assert document.unpriced_tokens == unpriced
