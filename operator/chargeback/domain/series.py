"""Series identity and the mapping of series labels to usage dimensions."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable

from chargeback.api.source import SourceSpec

Dimensions = tuple[str, str, str, tuple[tuple[str, str], ...]]
"""(user, tier, model, ((extra label, value), ...))"""


def series_key(labels: dict[str, str]) -> str:
    """Canonical text identity of a series: its labels without the metric name, sorted."""
    items = {k: labels[k] for k in sorted(labels) if k != "__name__"}
    return json.dumps(items, separators=(",", ":"))


def series_labels(key: str) -> dict[str, str]:
    """Inverse of :func:`series_key`."""
    labels: dict[str, str] = json.loads(key)
    return labels


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
    usage_by_series: Iterable[tuple[str, int]], source: SourceSpec
) -> dict[Dimensions, int]:
    """Sum per-series usage into dimensions: replicas of one user add up, never deduplicate."""
    totals: dict[Dimensions, int] = defaultdict(int)
    for key, tokens in usage_by_series:
        if tokens:
            totals[dimensions(series_labels(key), source)] += tokens
    return dict(totals)
