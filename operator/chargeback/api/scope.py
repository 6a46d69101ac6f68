"""UsageScope: which usage the UsageReports of some namespaces may see (cluster administrators).

A cluster-scoped kind, so that only whoever may write cluster-scoped objects (cluster
administrators; the chart's `<release>-scope-admin` role) grants it, never a namespace's own
editors. A scope names namespaces (by name or labels) and says what their reports see: the usage of
one source (the administrator's, not the report's), narrowed by label matchers that the operator
ANDs into every report's selector. `unrestricted` namespaces (administrators' own) see everything
and may define their own sources.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from chargeback.api.base import ApiModel
from chargeback.api.common import Conditions, DnsLabel, unique
from chargeback.api.source import SourceSpec

LABEL_KEY = r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
LabelKey = Annotated[str, Field(pattern=LABEL_KEY, max_length=317)]
LabelValue = Annotated[str, Field(pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$",
                                  max_length=63)]  # fmt: skip


class NamespaceSelector(ApiModel):
    """Namespaces by their labels (all must match)."""

    match_labels: Annotated[dict[LabelKey, LabelValue], Field(min_length=1, max_length=16)]
    """Labels a namespace must carry, e.g. {"chargeback.dev/tenant": "a"}."""


class UsageScopeSpec(ApiModel):
    """The namespaces granted, and what their reports see."""

    namespaces: Annotated[
        list[DnsLabel],
        Field(max_length=500, json_schema_extra={"x-kubernetes-list-type": "set"}),
    ] = []  # noqa: RUF012
    """Namespaces granted by name."""
    namespace_selector: NamespaceSelector | None = None
    """Namespaces granted by their labels."""
    unrestricted: bool = False
    """The namespaces see all usage and may define their own source (administrators' namespaces)."""
    selector: Annotated[str, Field(max_length=1024)] = ""
    """PromQL label matchers ANDed into every report's selector in these namespaces, e.g.
    `cost_center="a"` or `subscription=~"team-a-.*"`. Empty: all usage of the source."""
    source: SourceSpec | None = None
    """The source the reports read (metric, label mapping, base selector). Unset: the default
    source. Reports may narrow its selector and add extra labels, never change its metric or
    label mapping."""

    @model_validator(mode="after")
    def _granted(self) -> UsageScopeSpec:
        if not self.namespaces and self.namespace_selector is None:
            raise ValueError("a scope grants namespaces: set namespaces or namespaceSelector")
        unique(self.namespaces, "namespace")
        return self


class UsageScopeStatus(ApiModel):
    """What the operator made of the scope."""

    observed_generation: int = 0
    """The metadata.generation last processed."""
    conditions: Conditions = []  # noqa: RUF012
    """Ready: the scope's selector and source are valid (else it grants nothing)."""
