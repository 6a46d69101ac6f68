"""Series identity and the mapping of series labels to usage dimensions."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable

from chargeback.api.source import SourceSpec

Dimensions = tuple[str, str, str, tuple[tuple[str, str], ...]]
"""(user, tier, model, ((extra label, value), ...))"""

SeriesKey = tuple[tuple[str, str], ...]
"""Identity of a series: its (label, value) pairs without the metric name, sorted by label."""


def series_key(pairs: Iterable[tuple[str, str]]) -> SeriesKey:
    """The identity of a series from its labels (any order; ``__name__`` is dropped)."""
    return tuple(sorted((k, v) for k, v in pairs if k != "__name__"))


def key_text(key: SeriesKey) -> str:
    """Canonical text of a series identity, for storage."""
    return json.dumps(dict(key), separators=(",", ":"))


def key_from_text(text: str) -> SeriesKey:
    """Inverse of :func:`key_text`."""
    labels: dict[str, str] = json.loads(text)
    return series_key(labels.items())


def dimensions(labels: dict[str, str], source: SourceSpec) -> Dimensions:
    """Usage dimensions of a series; a missing label becomes the empty string."""
    mapping = source.labels
    extra = tuple((name, labels.get(name, "")) for name in source.extra_labels)
    return (
        labels.get(mapping.user, ""),
        labels.get(mapping.tier, ""),
        labels.get(mapping.model, ""),
        extra,
    )


def aggregate(
    usage_by_series: Iterable[tuple[SeriesKey, int]], source: SourceSpec
) -> dict[Dimensions, int]:
    """Sum per-series usage into dimensions: replicas of one user add up, never deduplicate."""
    totals: dict[Dimensions, int] = defaultdict(int)
    for key, tokens in usage_by_series:
        if tokens:
            totals[dimensions(dict(key), source)] += tokens
    return dict(totals)
