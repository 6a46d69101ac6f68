"""Where usage comes from: the counter metric, its label mapping and a label-matcher selector."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated

from pydantic import Field

from chargeback.api.base import ApiModel

LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
LabelName = Annotated[str, Field(pattern=LABEL_NAME, max_length=128)]

DEFAULT_METRICS = ("authorized_hits", "authorized_hits_total")
"""Metric names tried in order when ``metric`` is not set: the MaaS workshop and 2026 names."""


class LabelMapping(ApiModel):
    """Which Prometheus label carries each dimension of usage."""

    user: LabelName = "user"
    """Label holding the user (MaaS: the per-user ServiceAccount name)."""
    tier: LabelName = "tier"
    """Label holding the tier (free, premium, enterprise, ...)."""
    model: LabelName = "model"
    """Label holding the model name."""


class SourceSpec(ApiModel):
    """A token counter in Prometheus and how to read it."""

    metric: Annotated[str, Field(pattern=METRIC_NAME, max_length=200)] | None = None
    """Counter metric. Unset: the first of authorized_hits, authorized_hits_total that exists."""
    selector: Annotated[str, Field(max_length=1024)] = 'model!=""'
    """PromQL label matchers restricting the series, e.g. `model!="", tier=~"free|premium"`.
    Only label matchers are accepted. The default drops per-request hits without a model label."""
    labels: LabelMapping = LabelMapping()
    """Label mapping for the user, tier and model dimensions."""
    extra_labels: Annotated[tuple[LabelName, ...], Field(max_length=8)] = ()
    """Further labels kept as dimensions of usage, e.g. cost_center or limitador_namespace."""

    def source_id(self) -> str:
        """A stable identifier of this source's definition, used as the ledger key."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]
