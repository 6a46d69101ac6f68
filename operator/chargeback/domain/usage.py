"""Usage as the ledger stores it: tokens per bucket and dimensions, and gaps in the data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from chargeback.api.source import TokenType


class UsageRow(NamedTuple):
    """Tokens of one bucket (bucket_start_ms, bucket_start_ms + size] and one set of dimensions.

    A named tuple: catching up builds and writes millions of them.
    """

    bucket_start_ms: int
    user: str
    tier: str
    model: str
    extra: tuple[tuple[str, str], ...]
    tokens: int
    token_type: str = TokenType.TOTAL
    """input, output, cached_input or total (``api.source.TokenType``)."""


@dataclass(frozen=True)
class Gap:
    """A time range whose usage Prometheus could no longer show us."""

    start_ms: int
    end_ms: int
    reason: str
