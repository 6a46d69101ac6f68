"""Live cost and token queries for dashboards: every tier, model override and token type priced.

Dashboards estimate cost from the counters as they grow; reports (the ledger) are the bill.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from chargeback.api.pricing import TierPricingSpec, TokenPrices
from chargeback.api.source import SourceSpec, TokenType
from chargeback.domain.money import parse_decimal
from chargeback.domain.selectors import Matcher, regex_escape, series_selector, source_matchers


def filtered(source: SourceSpec, metric: str, *extra: Matcher) -> str:
    """The source's selector with the dashboard's user/tier/model variables applied."""
    labels = source.labels
    variables = (
        Matcher(labels.user, "=~", "$user"),
        Matcher(labels.tier, "=~", "$tier"),
        Matcher(labels.model, "=~", "$model"),
        # Extra labels (a team label such as cost_center, the route) filter too; `.*` also
        # matches series that lack the label.
        *(Matcher(label, "=~", f"${label}") for label in source.extra_labels),
    )
    return series_selector(metric, (*source_matchers(source), *variables, *extra))


def _per_token(price: str, unit: int) -> str:
    value = parse_decimal(price) / Decimal(unit)
    return format(value.normalize(), "f")


def token_kinds(source: SourceSpec, metric: str) -> list[tuple[str, tuple[Matcher, ...], str]]:
    """(metric, matchers, token type) of each kind of token the source reads."""
    if source.metric_token_types:
        return [(m, (), kind) for m, kind in sorted(source.metric_token_types.items())]
    if source.token_type_label:
        label = source.token_type_label
        return [(metric, (Matcher(label, "=", value),), kind)
                for value, kind in sorted(source.token_types.items())]  # fmt: skip
    return [(metric, (), TokenType.TOTAL)]


def tokens_expr(source: SourceSpec, metric: str, window: str) -> str:
    """Tokens over ``window`` per series, of the kinds that never overlap.

    Cached input is left out where the source's input has it already; counters that differ only
    by name (one per token type) are told apart by a label, so they can be summed.
    """
    kinds = token_kinds(source, metric)
    names = {kind for _, _, kind in kinds}
    counted = [k for k in kinds if k[2] != TokenType.CACHED_INPUT or TokenType.INPUT not in names]
    if source.metric_token_types:
        return " or ".join(
            f"label_replace(increase({filtered(source, m)}[{window}]), "
            f'"chargeback_token_type", "{kind}", "", "")'
            for m, _, kind in counted
        )
    if source.token_type_label and len(counted) < len(kinds):
        values = sorted(
            v for v, kind in source.token_types.items() if kind != TokenType.CACHED_INPUT
        )
        only = Matcher(source.token_type_label, "=~", "|".join(regex_escape(v) for v in values))
        return f"increase({filtered(source, metric, only)}[{window}])"
    return f"increase({filtered(source, metric)}[{window}])"


Lookup = Callable[[str], str | None]
"""The price of a token type (None: unpriced)."""


def _chain(model: TokenPrices, tier: TokenPrices) -> Lookup:
    """A model's prices, falling back to its tier's (``PriceVersion.price``'s order)."""

    def price(kind: str) -> str | None:
        own = model.price_of(kind)
        return own if own is not None else tier.price_of(kind)

    return price


def _coefficient(entry: Lookup, kind: str, kinds: set[str], unit: int) -> str | None:
    """Money per token of ``kind`` in a live cost query; None: unpriced.

    Cached input is also in the source's input (``domain/series.py``): its term corrects the
    input price to the cached one.
    """
    price = entry(kind)
    if kind != TokenType.CACHED_INPUT or TokenType.INPUT not in kinds:
        return None if price is None else _per_token(price, unit)
    cached = parse_decimal(price or "0") - parse_decimal(entry(TokenType.INPUT) or "0")
    return None if not cached else format((cached / Decimal(unit)).normalize(), "f")


def cost_expr(
    pricing: TierPricingSpec, source: SourceSpec, metric: str, by: str, window: str
) -> str:
    """Cost over ``window`` summed by ``by``, every tier, model override and token type priced.

    Terms are joined by `or`, so a tier without traffic cannot blank the whole result; terms of
    counters that differ only by name (one per token type) are told apart by a label.
    """
    tier_label, model_label = source.labels.tier, source.labels.model
    kinds = token_kinds(source, metric)
    names = {kind for _, _, kind in kinds}
    terms = []
    for tier in pricing.tiers:
        in_tier = Matcher(tier_label, "=", tier.name)
        if tier.name == source.default_tier:  # series without a tier are in the default one
            in_tier = Matcher(tier_label, "=~", f"{regex_escape(tier.name)}|")
        others = Matcher(model_label, "!~", "|".join(m.name for m in tier.models))
        scopes: list[tuple[Lookup, tuple[Matcher, ...]]] = [
            (_chain(m, tier), (in_tier, Matcher(model_label, "=", m.name))) for m in tier.models
        ]
        scopes.append((tier.price_of, (in_tier, others) if tier.models else (in_tier,)))
        for entry, matchers in scopes:
            for kind_metric, kind_matchers, kind in kinds:
                per_token = _coefficient(entry, kind, names, pricing.tokens_per_unit)
                if per_token is None:
                    continue
                selector = filtered(source, kind_metric, *matchers, *kind_matchers)
                term = f"increase({selector}[{window}]) * {per_token}"
                if source.metric_token_types:
                    term = f'label_replace({term}, "chargeback_token_type", "{kind}", "", "")'
                terms.append(term)
    return f"sum by ({by}) ({' or '.join(terms) or 'vector(0)'})"
