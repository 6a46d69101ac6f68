"""The PromQL the collectors send, built by pure functions (unit-tested).

Ranges are written so that a window covers exactly (a, b] on every Prometheus version: 2.x range
selectors include their left edge, 3.x do not, so a closed-range server gets a range 1 ms shorter.
Times are pinned with ``@`` so a query means the same whenever it runs.
"""

from __future__ import annotations

from collections.abc import Sequence


def at(t_ms: int) -> str:
    """Epoch seconds with millisecond precision, for PromQL's ``@`` modifier."""
    return f"{t_ms / 1000:.3f}"


def window(selector: str, a: int, b: int, *, closed: bool) -> str:
    """``selector[range] @ b`` covering exactly (a, b].

    ``closed``: the server's ranges include their left edge, as Prometheus 2.x's do.
    """
    return f"{selector}[{(b - a) - (1 if closed else 0)}ms] @ {at(b)}"


def lookback(selector: str, span_ms: int, t_ms: int) -> str:
    """``selector[span] @ t``: the last ``span_ms`` before ``t`` (edges as the server has them)."""
    return f"{selector}[{span_ms}ms] @ {at(t_ms)}"


def last_value(range_selector: str) -> str:
    """The last sample of each series in the range."""
    return f"last_over_time({range_selector})"


def present(range_selector: str) -> str:
    """How many series have a sample in the range (empty result: none)."""
    return f"count(last_over_time({range_selector}))"


def resets(range_selector: str) -> str:
    """The series with a counter reset in the range (more may be flagged, never fewer).

    Not ``resets()``: a Thanos Querier applies counter resets to the samples before a counter
    function sees them, so its ``resets()`` is 0 for every series (thanos-io/thanos#3644).
    ``increase()`` and ``delta()`` of a range compute the same extrapolated difference, and
    differ only where ``increase()`` adds a reset back, or where a young counter's extrapolation
    stops at zero (a raw fetch more, never one less); ``delta()`` reads raw samples everywhere.
    """
    return f"(increase({range_selector}) != bool delta({range_selector})) == 1"


def unless(left: str, right: str) -> str:
    """The series of ``left`` without a match in ``right``."""
    return f"{left} unless {right}"


def anchored_increase(range_selector: str, by: Sequence[str] = ()) -> str:
    """The anchored ``increase()`` (Prometheus 3.7+), summed by ``by`` when given."""
    increase = f"increase({range_selector} anchored)"
    return sum_by(by, increase) if by else increase


def integral(expr: str, range_ms: int, resolution_ms: int) -> str:
    """``expr`` summed at each ``resolution_ms`` step over the last ``range_ms`` (a subquery)."""
    return f"sum_over_time(({expr})[{range_ms}ms:{resolution_ms}ms])"


def range_of(selector: str, span_ms: int) -> str:
    """``selector[span]`` relative to the evaluation time (range queries)."""
    return f"{selector}[{span_ms}ms]"


def shifted(selector: str, span_ms: int, offset_ms: int) -> str:
    """``selector[span] offset o``: the ``span_ms`` ending ``offset_ms`` before evaluation."""
    return f"{selector}[{span_ms}ms] offset {offset_ms}ms"


def sum_by(labels: Sequence[str], expr: str) -> str:
    """``expr`` summed by ``labels``."""
    return f"sum by ({', '.join(labels)}) ({expr})"


def count_by(labels: Sequence[str], expr: str) -> str:
    """How many series of ``expr`` there are per ``labels``."""
    return f"count by ({', '.join(labels)}) ({expr})"
