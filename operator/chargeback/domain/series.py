"""Series identity and the mapping of series labels to usage dimensions."""

from __future__ import annotations

import json
from collections.abc import Iterable

from chargeback.api.source import SourceSpec, TokenType

Dimensions = tuple[str, str, str, tuple[tuple[str, str], ...], str]
"""(user, tier, model, ((extra label, value), ...), token type)"""

SeriesKey = tuple[tuple[str, str], ...]
"""Identity of a series: its (label, value) pairs without the metric name, sorted by label."""


def series_key(pairs: Iterable[tuple[str, str]]) -> SeriesKey:
    """The identity of a series from its labels (any order; ``__name__`` is dropped)."""
    return tuple(sorted((k, v) for k, v in pairs if k != "__name__"))


def series_key_of(labels: dict[str, str]) -> SeriesKey:
    """:func:`series_key` of a label dict that may be changed (a decoded answer's): faster."""
    labels.pop("__name__", None)
    return tuple(sorted(labels.items()))


def key_text(key: SeriesKey) -> str:
    """Canonical text of a series identity, for storage."""
    return json.dumps(dict(key), separators=(",", ":"))


def key_from_text(text: str) -> SeriesKey:
    """Inverse of :func:`key_text`."""
    labels: dict[str, str] = json.loads(text)
    return series_key(labels.items())


def token_type(labels: dict[str, str], source: SourceSpec) -> TokenType:
    """The token type of a series.

    From its metric (one counter per type), its type label, or total when the source does not
    tell types apart.
    """
    if source.metric_token_types and source.metric in source.metric_token_types:
        return source.metric_token_types[source.metric]
    if source.token_type_label:
        return source.token_types.get(labels.get(source.token_type_label, ""), TokenType.TOTAL)
    return TokenType.TOTAL


def dimensions(labels: dict[str, str], source: SourceSpec) -> Dimensions:
    """Usage dimensions of a series.

    A missing label becomes the empty string; a missing tier, the source's default tier.
    """
    mapping = source.labels
    extra = tuple((name, labels.get(name, "")) for name in source.extra_labels)
    return (
        labels.get(mapping.user, ""),
        labels.get(mapping.tier, "") or source.default_tier or "",
        labels.get(mapping.model, ""),
        extra,
        token_type(labels, source).value,
    )


def aggregate(
    usage_by_series: Iterable[tuple[SeriesKey, int]],
    source: SourceSpec,
    memo: dict[SeriesKey, Dimensions] | None = None,
) -> dict[Dimensions, int]:
    """Sum per-series usage into dimensions: replicas of one user add up, never deduplicate.

    Cached input is part of a source's input (OpenAI's ``prompt_tokens`` includes
    ``cached_tokens``; Envoy AI Gateway records both): it is taken out of the input of the same
    dimensions, so input and cached input never count a token twice. ``memo`` keeps each
    series' dimensions for the next call (the same series, bucket after bucket).
    """
    totals: dict[Dimensions, int] = {}
    known = {} if memo is None else memo
    total = totals.get
    for key, tokens in usage_by_series:
        if tokens:
            dims = known.get(key)
            if dims is None:
                dims = known[key] = dimensions(dict(key), source)
            totals[dims] = total(dims, 0) + tokens
    kinds = {*source.token_types.values(), *source.metric_token_types.values()}
    if TokenType.CACHED_INPUT not in kinds:
        return totals
    for dims, cached in list(totals.items()):
        if dims[4] == TokenType.CACHED_INPUT:
            uncached = (*dims[:4], TokenType.INPUT.value)
            if uncached in totals:
                totals[uncached] = max(totals[uncached] - cached, 0)
    return {dims: tokens for dims, tokens in totals.items() if tokens}
