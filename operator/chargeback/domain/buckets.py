"""Time buckets: UTC-aligned, half-open on the left (a, b], tiling time without overlap."""

from __future__ import annotations

import datetime as dt
import re

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> dt.timedelta:
    """Parse durations like ``1h``, ``30m``, ``1d12h``; raise ValueError naming the input."""
    match = _DURATION.match(text.strip())
    if not text.strip() or not match or not any(match.groups()):
        raise ValueError(f"invalid duration {text!r}: use forms like 1h, 30m, 1d12h")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def duration_ms(text: str) -> int:
    """A duration like ``1h`` or ``30s`` in milliseconds; ValueError naming a bad input."""
    return int(parse_duration(text).total_seconds() * 1000)


def to_ms(moment: dt.datetime) -> int:
    """Milliseconds since the epoch of an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: a time zone is required")
    return int(moment.timestamp() * 1000)


def from_ms(t_ms: int) -> dt.datetime:
    """Aware UTC datetime of epoch milliseconds."""
    return dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC)


def floor(t_ms: int, size_ms: int) -> int:
    """The bucket edge at or before ``t_ms``."""
    return t_ms - t_ms % size_ms
