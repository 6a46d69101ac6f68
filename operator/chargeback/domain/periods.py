"""Report periods: a fixed range, or daily/weekly/monthly periods in an IANA time zone.

Periods are half-open [start, end) and begin at local midnight, so a day in a time zone with a
DST change is 23 or 25 hours long. A period is final once its end plus the grace period for
late scrapes has passed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from chargeback.api.report import UsageReportSpec
from chargeback.domain.buckets import duration_ms, to_ms


@dataclass(frozen=True, order=True)
class Period:
    """A report period [start_ms, end_ms)."""

    start_ms: int
    end_ms: int

    def contains(self, t_ms: int) -> bool:
        """Whether ``t_ms`` is in the period."""
        return self.start_ms <= t_ms < self.end_ms


def _local_start(moment: dt.datetime, interval: str) -> dt.datetime:
    day = moment.date()
    if interval == "weekly":
        day -= dt.timedelta(days=day.weekday())
    elif interval == "monthly":
        day = day.replace(day=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=moment.tzinfo)


def _next_start(start: dt.datetime, interval: str) -> dt.datetime:
    day = start.date()
    if interval == "daily":
        day += dt.timedelta(days=1)
    elif interval == "weekly":
        day += dt.timedelta(days=7)
    else:
        day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=start.tzinfo)


def scheduled_period(t_ms: int, interval: str, time_zone: str) -> Period:
    """The scheduled period containing ``t_ms``."""
    zone = ZoneInfo(time_zone)
    local = dt.datetime.fromtimestamp(t_ms / 1000, zone)
    start = _local_start(local, interval)
    return Period(to_ms(start), to_ms(_next_start(start, interval)))


def previous_period(period: Period, interval: str, time_zone: str) -> Period:
    """The scheduled period just before ``period``."""
    return scheduled_period(period.start_ms - 1, interval, time_zone)


def report_period(spec: UsageReportSpec, t_ms: int) -> Period:
    """The period a report shows at ``t_ms``: its fixed period, or the scheduled one then."""
    if spec.period is not None:
        return Period(to_ms(spec.period.start), to_ms(spec.period.end))
    if spec.schedule is None:  # pragma: no cover - the spec validator forbids it
        raise ValueError("a report needs a period or a schedule")
    return scheduled_period(t_ms, spec.schedule.interval, spec.schedule.time_zone)


def grace_ms(spec: UsageReportSpec) -> int:
    """The report's grace period in milliseconds (fixed periods use the schedule default)."""
    text = spec.schedule.grace_period if spec.schedule else "2h"
    return duration_ms(text)


def is_final(period: Period, spec: UsageReportSpec, now_ms: int) -> bool:
    """Whether the period can be finalised: its end plus the grace period has passed."""
    return now_ms >= period.end_ms + grace_ms(spec)


def check_aligned(period: Period, bucket_ms: int) -> None:
    """Refuse periods whose edges do not fall on bucket edges (e.g. UTC+5:45 with 1h buckets)."""
    if period.start_ms % bucket_ms or period.end_ms % bucket_ms:
        raise ValueError(
            f"period edges {dt.datetime.fromtimestamp(period.start_ms / 1000, dt.UTC):%FT%TZ} "
            f"and {dt.datetime.fromtimestamp(period.end_ms / 1000, dt.UTC):%FT%TZ} are not "
            f"aligned to {bucket_ms // 60000}-minute buckets; use a smaller bucket size"
        )
