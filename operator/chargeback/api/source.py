"""Where usage comes from: the counter metric, its label mapping and a label-matcher selector."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from chargeback.api.base import ApiModel
from chargeback.api.common import DnsLabel

LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
LabelName = Annotated[str, Field(pattern=LABEL_NAME, max_length=128)]

DEFAULT_METRICS = ("authorized_hits", "authorized_hits_total")
"""Metric names tried in order when ``metric`` is not set: the MaaS workshop and 2026 names."""


MetricName = Annotated[str, Field(pattern=METRIC_NAME, max_length=200)]
LabelValue = Annotated[str, Field(min_length=1, max_length=128)]


class TokenType(StrEnum):
    """What kind of tokens a count is. The kinds a report shows never overlap."""

    INPUT = "input"
    """Prompt tokens not read from a cache (a source's cached input is taken out of its input)."""
    OUTPUT = "output"
    """Generated tokens, reasoning included."""
    CACHED_INPUT = "cached_input"
    """Prompt tokens read from a prompt cache."""
    TOTAL = "total"
    """Tokens of a counter that does not tell the kinds apart (MaaS, workshop)."""


Preset = Literal["maas", "envoy-ai-gateway", "kong", "vllm"]

PRESETS: dict[str, dict[str, Any]] = {
    "maas": {},
    "envoy-ai-gateway": {
        "metric": "gen_ai_client_token_usage_sum",
        "selector": 'gen_ai_request_model!=""',
        "labels": {"user": "user_id", "model": "gen_ai_request_model"},
        "token_type_label": "gen_ai_token_type",
        "token_types": {"input": "input", "output": "output", "cached_input": "cached_input"},
        "default_tier": "default",
    },
    "kong": {
        "metric": "ai_llm_tokens_total",
        "selector": 'ai_model!=""',
        "labels": {"user": "consumer", "tier": "workspace", "model": "ai_model"},
        "token_type_label": "token_type",
        "token_types": {"prompt_tokens": "input", "completion_tokens": "output"},
        "default_tier": "default",
    },
    "vllm": {
        "metric_token_types": {
            "vllm:prompt_tokens_total": "input",
            "vllm:generation_tokens_total": "output",
        },
        "selector": 'model_name!=""',
        "labels": {"model": "model_name"},
        "default_tier": "default",
    },
}
"""What each preset sets; a field the source sets itself wins (docs/gateways/)."""


ADDED_FIELDS = ("token_type_label", "token_types", "metric_token_types", "default_tier")
"""Fields added after ledgers existed: left out of a source's identity while unset."""


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

    preset: Preset | None = None
    """A gateway whose counter this is: maas, envoy-ai-gateway, kong or vllm. It fills the
    fields below that the source does not set (docs/gateways/)."""
    metric: MetricName | None = None
    """Counter metric. Unset: the first of authorized_hits, authorized_hits_total that exists."""
    selector: Annotated[str, Field(max_length=1024)] = 'model!=""'
    """PromQL label matchers restricting the series, e.g. `model!="", tier=~"free|premium"`.
    Only label matchers are accepted. The default drops per-request hits without a model label."""
    labels: LabelMapping = LabelMapping()
    """Label mapping for the user, tier and model dimensions."""
    extra_labels: Annotated[tuple[LabelName, ...], Field(max_length=8)] = ()
    """Further labels kept as dimensions of usage, e.g. cost_center or limitador_namespace."""
    token_type_label: LabelName | None = None
    """Label telling input from output tokens (Envoy AI Gateway: gen_ai_token_type). Unset: every
    token is of type total."""
    token_types: Annotated[dict[LabelValue, TokenType], Field(max_length=16)] = {}  # noqa: RUF012
    """Values of tokenTypeLabel to read and their token type (e.g. prompt_tokens: input). Series
    with other values (a total beside its parts, reasoning within output) are not read, so no
    token is counted twice. Required with tokenTypeLabel."""
    metric_token_types: Annotated[dict[MetricName, TokenType], Field(max_length=4)] = {}  # noqa: RUF012
    """One counter per token type (vLLM: vllm:prompt_tokens_total: input). Replaces metric."""
    default_tier: DnsLabel | None = None
    """Plan of series without a tier label value (gateways without plans). Unset: such usage is
    in the empty tier, which no price matches."""

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        """Fill the fields the source leaves unset from its preset."""
        if not isinstance(data, dict) or data.get("preset") not in PRESETS:
            return data
        filled = dict(data)
        for name, value in PRESETS[data["preset"]].items():
            key = cls.model_fields[name].alias or name
            given = data.get(key, data.get(name))
            if given is None:
                filled[key] = value
            elif name == "labels" and isinstance(given, dict):
                # A label mapped by the source replaces the preset's for that dimension only.
                filled.pop(name, None)
                filled[key] = {**value, **given}
        return filled

    @model_validator(mode="after")
    def _token_types(self) -> SourceSpec:
        if self.token_type_label and not self.token_types:
            raise ValueError("tokenTypes must list the values of tokenTypeLabel to read")
        if self.token_types and not self.token_type_label:
            raise ValueError("tokenTypes needs tokenTypeLabel, the label holding those values")
        if self.metric_token_types and (self.metric or self.token_type_label):
            raise ValueError("metricTokenTypes replaces metric and tokenTypeLabel; set one way")
        return self

    def parts(self) -> tuple[SourceSpec, ...]:
        """The counters read: this one, or one per metric of ``metricTokenTypes``.

        Each part is a source of its own in the ledger.
        """
        if not self.metric_token_types:
            return (self,)
        return tuple(
            self.model_copy(update={"metric": metric, "metric_token_types": {metric: kind}})
            for metric, kind in sorted(self.metric_token_types.items())
        )

    def source_id(self) -> str:
        """A stable identifier of this source's definition, used as the ledger key."""
        definition = self.model_dump(mode="json", exclude={"preset"})
        for name in ADDED_FIELDS:
            if not definition[name]:
                del definition[name]  # ledgers keep the ids sources had before these fields
        canonical = json.dumps(definition, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]
