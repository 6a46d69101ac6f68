"""CustomResourceDefinitions generated from the pydantic models (one source of truth).

The pydantic JSON schema is turned into a structural OpenAPI v3 schema: references inlined,
optional fields unwrapped, titles dropped, object defaults dropped (scalar defaults kept so the
API server applies them), plus the CEL rules and printer columns declared here.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from chargeback.api.budget import BUDGET_LIST_RULES, BUDGET_RULES
from chargeback.api.common import GROUP, VERSION
from chargeback.api.pricing import TierPricingSpec, TierPricingStatus
from chargeback.api.report import UsageReportSpec, UsageReportStatus
from chargeback.api.scope import UsageScopeSpec, UsageScopeStatus

_KEEP = {
    "type", "description", "properties", "required", "items", "enum", "pattern", "format",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
    "minItems", "maxItems", "default", "minProperties", "maxProperties",
}  # fmt: skip

REPORT_RULES: list[dict[str, str]] = [
    {
        "rule": "has(self.period) != has(self.schedule)",
        "message": "exactly one of period or schedule must be set",
    },
    {
        "rule": "!has(self.attribution) || !has(self.attribution.teamLabel) || "
        "(has(self.source) && has(self.source.extraLabels) && "
        "self.attribution.teamLabel in self.source.extraLabels)",
        "message": "attribution.teamLabel must be listed in source.extraLabels",
        "fieldPath": ".attribution.teamLabel",
    },
]
PRICING_RULES: list[dict[str, str]] = [
    {
        "rule": "(has(self.tiers) && size(self.tiers) > 0) || has(self.maasSubscriptions)",
        "message": "tiers: list at least one tier, or take them from maasSubscriptions",
        "fieldPath": ".tiers",
    },
    {
        "rule": "self.currency == oldSelf.currency",
        "message": "currency cannot change: the recorded price versions and finalised periods "
        "are in the old currency; create a new TierPricing for the new one",
        "fieldPath": ".currency",
    },
]
PERIOD_RULES: list[dict[str, str]] = [
    {
        "rule": "timestamp(self.start) < timestamp(self.end)",
        "message": "period.start must be before period.end",
        "fieldPath": ".start",
    }
]
PRICE_RULES: list[dict[str, str]] = [
    {
        "rule": "has(self.price) || has(self.inputPrice) || has(self.outputPrice) || "
        "has(self.cachedInputPrice)",
        "message": "set price, at least one of inputPrice, outputPrice, cachedInputPrice",
    },
]
SOURCE_RULES: list[dict[str, str]] = [
    {
        "rule": "has(self.tokenTypeLabel) == (has(self.tokenTypes) && size(self.tokenTypes) > 0)"
        " || has(self.preset)",
        "message": "tokenTypeLabel and tokenTypes go together: the label holding the token type "
        "and the values of it to read",
        "fieldPath": ".tokenTypes",
    },
    {
        "rule": "!has(self.metricTokenTypes) || size(self.metricTokenTypes) == 0 || "
        "(!has(self.metric) && !has(self.tokenTypeLabel))",
        "message": "metricTokenTypes replaces metric and tokenTypeLabel; set one way",
        "fieldPath": ".metricTokenTypes",
    },
]
TIER_PRICE_RULES: list[dict[str, str]] = [
    {
        "rule": f"{PRICE_RULES[0]['rule']} || (has(self.models) && size(self.models) > 0)",
        "message": "set price, at least one of inputPrice, outputPrice, cachedInputPrice, or "
        "model prices",
    },
]
RULES_BY_DEF: dict[str, list[dict[str, str]]] = {
    "FixedPeriod": PERIOD_RULES,
    "Budget": BUDGET_RULES,
    "TierPrice": TIER_PRICE_RULES,
    "ModelPrice": PRICE_RULES,
    "SourceSpec": SOURCE_RULES,
}


def structural(model: type[BaseModel], rules: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The structural schema of ``model``."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    definitions = schema.pop("$defs", {})
    result = _convert(schema, definitions)
    if rules:
        result["x-kubernetes-validations"] = rules
    return result


def _convert(
    node: dict[str, Any], defs: dict[str, Any], spec_status: bool = False
) -> dict[str, Any]:
    node = copy.deepcopy(node)
    if "$ref" in node:
        name = node.pop("$ref").rsplit("/", 1)[-1]
        merged = {**defs[name], **node}
        converted = _convert(merged, defs)
        if name in RULES_BY_DEF:
            converted["x-kubernetes-validations"] = RULES_BY_DEF[name]
        return converted
    if "anyOf" in node:
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"unsupported union in schema: {options}")
        if node.get("default", ...) is None:
            node.pop("default")
        return _convert({**options[0], **node}, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _convert(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs)
        elif key == "additionalProperties" and isinstance(value, dict):
            # A map (e.g. matchLabels): its values' schema, or the API server prunes the entries.
            out[key] = _convert(value, defs)
        elif key == "patternProperties" and len(value) == 1:
            # Structural schemas have no patternProperties: the values' schema stays, the keys'
            # pattern is checked by the operator (a key no label can have matches nothing).
            out["additionalProperties"] = _convert(next(iter(value.values())), defs)
        elif _kept(key, value):
            out[key] = value
    if out.get("type") == "integer":
        out.setdefault("format", "int64")
    return out


def _kept(key: str, value: Any) -> bool:
    # Object and list defaults are left to the operator: the API server would need them whole.
    if key == "default":
        return not isinstance(value, (dict, list))
    return key.startswith("x-kubernetes-") or key in _KEEP


def _crd(
    *,
    kind: str,
    plural: str,
    short: list[str],
    scope: str,
    description: str,
    spec: dict[str, Any],
    status: dict[str, Any] | None,
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "apiVersion": {"type": "string", "description": "API version."},
        "kind": {"type": "string", "description": "Kind."},
        "metadata": {"type": "object"},
        "spec": spec,
    }
    if status is not None:
        properties["status"] = status
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
                "categories": ["chargeback"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}} if status is not None else {},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "required": ["spec"],
                            "properties": properties,
                        }
                    },
                }
            ],
        },
    }


READY_COLUMN = {
    "name": "Ready",
    "type": "string",
    "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    "description": "Whether the object is reconciled without problems.",
}
AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def tier_pricing_crd() -> dict[str, Any]:
    """The TierPricing CRD."""
    return _crd(
        kind="TierPricing",
        plural="tierpricings",
        short=["tp"],
        scope="Cluster",
        description="Prices per tier and model for AI token chargeback. Each accepted change "
        "becomes a price version effective from spec.effectiveFrom.",
        spec=structural(TierPricingSpec, PRICING_RULES),
        status=structural(TierPricingStatus),
        columns=[
            {"name": "Currency", "type": "string", "jsonPath": ".spec.currency",
             "description": "Currency of the prices."},
            {"name": "Version", "type": "integer", "jsonPath": ".status.currentVersion",
             "description": "Price version in force."},
            {"name": "Effective", "type": "date", "jsonPath": ".status.effectiveFrom",
             "description": "When the current version took effect."},
            READY_COLUMN,
            AGE_COLUMN,
        ],
    )  # fmt: skip


def usage_report_crd() -> dict[str, Any]:
    """The UsageReport CRD."""
    return _crd(
        kind="UsageReport",
        plural="usagereports",
        short=["ur"],
        scope="Namespaced",
        description="A chargeback report of AI token usage and cost per user, team, model and "
        "tier over fixed or recurring periods.",
        spec=structural(UsageReportSpec, REPORT_RULES + BUDGET_LIST_RULES),
        status=structural(UsageReportStatus),
        columns=[
            READY_COLUMN,
            {"name": "Period", "type": "date", "jsonPath": ".status.period.start",
             "description": "Start of the period shown."},
            {"name": "Tokens", "type": "integer", "jsonPath": ".status.totals.tokens",
             "description": "Tokens used in the period."},
            {"name": "Cost", "type": "string", "jsonPath": ".status.totals.cost",
             "description": "Cost of the period."},
            {"name": "Currency", "type": "string", "jsonPath": ".status.currency",
             "description": "Currency of the cost."},
            AGE_COLUMN,
        ],
    )  # fmt: skip


SCOPE_RULES: list[dict[str, str]] = [
    {
        "rule": "(has(self.namespaces) && size(self.namespaces) > 0) || "
        "has(self.namespaceSelector)",
        "message": "a scope grants namespaces: set namespaces or namespaceSelector",
    },
]


def usage_scope_crd() -> dict[str, Any]:
    """The UsageScope CRD."""
    return _crd(
        kind="UsageScope",
        plural="usagescopes",
        short=["us"],
        scope="Cluster",
        description="Which usage the UsageReports of some namespaces may see: one source, "
        "narrowed by label matchers ANDed into every report's selector. Cluster "
        "administrators grant it.",
        spec=structural(UsageScopeSpec, SCOPE_RULES),
        status=structural(UsageScopeStatus),
        columns=[
            {"name": "Selector", "type": "string", "jsonPath": ".spec.selector",
             "description": "Matchers ANDed into the reports' selectors."},
            {"name": "Unrestricted", "type": "boolean", "jsonPath": ".spec.unrestricted",
             "description": "Whether the namespaces see all usage."},
            READY_COLUMN,
            AGE_COLUMN,
        ],
    )  # fmt: skip


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD, for ``make crds``."""
    return {
        f"{GROUP}_tierpricings.yaml": tier_pricing_crd(),
        f"{GROUP}_usagereports.yaml": usage_report_crd(),
        f"{GROUP}_usagescopes.yaml": usage_scope_crd(),
    }
