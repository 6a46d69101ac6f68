"""TierPricing: the prices an administrator sets, per tier and per model, as data."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field, Strict, model_validator

from chargeback.api.base import ApiModel
from chargeback.api.common import Conditions, Currency, DecimalString, DnsLabel, list_map, unique

MODEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"


class TokenPrices(ApiModel):
    """Prices per token type; ``price`` is the default of every type it is set for."""

    price: DecimalString | None = None
    """Price per unit of tokens of any type without a price of its own (and of total tokens)."""
    input_price: DecimalString | None = None
    """Price per unit of input tokens (not read from a cache)."""
    output_price: DecimalString | None = None
    """Price per unit of output tokens."""
    cached_input_price: DecimalString | None = None
    """Price per unit of input tokens read from a prompt cache."""

    def price_of(self, token_type: str) -> str | None:
        """This entry's price for ``token_type``: its own, else ``price``; None: not set here."""
        own = {"input": self.input_price, "output": self.output_price,
               "cached_input": self.cached_input_price}.get(token_type)  # fmt: skip
        return own if own is not None else self.price

    def _priced_somewhere(self) -> bool:
        return any(p is not None for p in (self.price, self.input_price, self.output_price,
                                           self.cached_input_price))  # fmt: skip

    @model_validator(mode="after")
    def _priced(self) -> TokenPrices:
        if not self._priced_somewhere():
            models = ", or model prices" if isinstance(self, TierPrice) else ""
            raise ValueError("set price, at least one of inputPrice, outputPrice, "
                             f"cachedInputPrice{models}")  # fmt: skip
        return self


class ModelPrice(TokenPrices):
    """Prices for one model that override the tier's."""

    name: Annotated[str, Field(pattern=MODEL_PATTERN, max_length=253)]
    """Model name as it appears in the source's model label."""


class TierPrice(TokenPrices):
    """The prices of one tier: ``price`` for every token type, or per type."""

    name: DnsLabel
    """The plan: the value of the counter's tier label (free, premium, ...), or on MaaS v0.2+
    counters, which have no tier, of its subscription label (see UsageReport status.source)."""
    included_tokens: Annotated[int, Strict(), Field(ge=0, le=10**15)] = 0
    """Tokens each user of this tier gets free per report period before prices apply."""
    models: Annotated[list[ModelPrice], list_map("name", 256)] = []  # noqa: RUF012 - pydantic copies defaults
    """Per-model price overrides within this tier."""

    def _priced_somewhere(self) -> bool:
        # A tier of model prices only (imported from a MaaSSubscription): other models unpriced.
        return super()._priced_somewhere() or bool(self.models)

    @model_validator(mode="after")
    def _unique_models(self) -> TierPrice:
        unique([m.name for m in self.models], "model")
        return self


class GpuProductRate(ApiModel):
    """The internal rate of one GPU product."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]*$", max_length=128)]
    """GPU product as in the node label nvidia.com/gpu.product (e.g. NVIDIA-A100-SXM4-80GB)."""
    gpu_hour: DecimalString
    """Cost of one GPU-hour of this product."""


class ModelCost(ApiModel):
    """Fixed costs of serving one model, beside its GPUs."""

    name: Annotated[str, Field(pattern=MODEL_PATTERN, max_length=253)]
    """Model name as it appears in the source's model label."""
    monthly: DecimalString
    """Fixed cost per calendar month (licences, storage, support), prorated by the hour."""


class InfrastructureCosts(ApiModel):
    """What serving models costs the platform, for cost-to-value (margins per model and team)."""

    gpu_hour: DecimalString
    """Cost of one GPU-hour of a product not listed in gpuProducts."""
    gpu_products: Annotated[list[GpuProductRate], list_map("name", 64)] = []  # noqa: RUF012
    """Cost of one GPU-hour per GPU product."""
    models: Annotated[list[ModelCost], list_map("name", 256)] = []  # noqa: RUF012
    """Fixed monthly costs per model."""

    @model_validator(mode="after")
    def _unique_names(self) -> InfrastructureCosts:
        unique([p.name for p in self.gpu_products], "GPU product")
        unique([m.name for m in self.models], "model")
        return self


class MaaSSubscriptionPrices(ApiModel):
    """Take per-token rates from MaaSSubscription objects (maas.opendatahub.io).

    Each subscription is a tier of its name; each model's billingRate.perToken x tokensPerUnit
    is that tier's price of the model, unless this TierPricing sets that model itself.
    """

    namespaces: Annotated[
        list[DnsLabel], Field(max_length=50, json_schema_extra={"x-kubernetes-list-type": "set"})
    ] = []  # noqa: RUF012
    """Namespaces to read subscriptions from. Empty: every namespace."""


class TierPricingSpec(ApiModel):
    """Prices per tier (and model) in one currency; every accepted change is a new version."""

    currency: Currency
    """ISO 4217 currency code of all prices."""
    tokens_per_unit: Annotated[int, Strict(), Field(ge=1, le=1_000_000_000)] = 1000
    """How many tokens one price unit covers (1000: prices are per 1K tokens)."""
    effective_from: dt.datetime | None = None
    """When this version of the prices takes effect. Unset: when the change is accepted."""
    tiers: Annotated[list[TierPrice], list_map("name", 64)] = []  # noqa: RUF012
    """Prices of the tiers (at least one, unless maasSubscriptions brings them). Usage in a tier
    not listed here is reported as unpriced."""
    maas_subscriptions: MaaSSubscriptionPrices | None = None
    """Also price with the rates of MaaSSubscriptions (docs/gateways/maas.md). Its own entries
    win; a changed rate is a new price version from when it is seen."""
    infrastructure: InfrastructureCosts | None = None
    """Internal costs of serving (GPU-hours, fixed costs), versioned with the prices. Unset:
    reports show no cost-to-value."""

    @model_validator(mode="after")
    def _unique_tiers(self) -> TierPricingSpec:
        if not self.tiers and self.maas_subscriptions is None:
            raise ValueError("tiers: list at least one tier, or take them from maasSubscriptions")
        unique([t.name for t in self.tiers], "tier")
        return self


class TierPricingStatus(ApiModel):
    """What the operator made of the pricing."""

    observed_generation: int = 0
    """The metadata.generation last processed."""
    conditions: Conditions = []  # noqa: RUF012
    """Current conditions (Ready)."""
    current_version: int = 0
    """Number of the price version in force, counted from 1."""
    effective_from: dt.datetime | None = None
    """When the current version took effect."""
    imported_prices: int = 0
    """How many (subscription, model) prices the current version took from MaaSSubscriptions."""
    spec_digest: Annotated[str, Field(max_length=64)] = ""
    """Digest of the spec last recorded, without imported rates (tells an edit from a rate
    change)."""
