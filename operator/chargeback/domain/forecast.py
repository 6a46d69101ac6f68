"""Usage forecasts for capacity planning: daily tokens, trend plus weekly seasonality.

The model is statsmodels' exponential smoothing state space model (ETS) with additive error,
additive trend and additive weekly seasonality, fitted to complete UTC days of the ledger. The
forecast of a period is the sum of its days; its interval comes from simulated future paths
(the sum of daily intervals would overstate it), with a fixed random seed so the same ledger
gives the same document. Fewer than three weeks of history give no forecast: with one or two
seasons a weekly pattern cannot be told from noise.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from statsmodels.tsa.exponential_smoothing.ets import ETSModel

from chargeback.domain.usage import UsageRow

DAY_MS = 86_400_000
SEASON = 7
MIN_DAYS = 3 * SEASON
HISTORY_DAYS = 8 * SEASON
LEVEL = 0.8
"""Coverage of the forecast interval (10th to 90th percentile)."""
PATHS = 400


class InsufficientHistory(ValueError):
    """Too few complete days to forecast."""


@dataclass(frozen=True)
class Forecast:
    """Tokens expected over a horizon, with an interval."""

    tokens: int
    lower: int
    upper: int


def daily_totals(
    rows: Iterable[UsageRow], first_day_ms: int, days: int, key: Callable[[UsageRow], str]
) -> dict[str, list[int]]:
    """Tokens per key and UTC day, for ``days`` days from ``first_day_ms``, zeros included."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0] * days)
    for row in rows:
        index = (row.bucket_start_ms - first_day_ms) // DAY_MS
        if 0 <= index < days:
            totals[key(row)][index] += row.tokens
    return dict(totals)


def forecast(history: Sequence[int], horizon_days: int, seed: int = 0) -> Forecast:
    """Tokens over the next ``horizon_days`` days after ``history`` (complete days, oldest first)."""
    if len(history) < MIN_DAYS:
        raise InsufficientHistory(
            f"{len(history)} complete days of usage; a forecast needs {MIN_DAYS}"
        )
    series = np.asarray(history, dtype=float)
    if not series.any():
        return Forecast(0, 0, 0)
    scale = float(series.max())
    with warnings.catch_warnings():
        # Convergence chatter from the optimiser on short or flat series; the fit still stands.
        warnings.simplefilter("ignore")
        fitted = ETSModel(
            series / scale, error="add", trend="add", seasonal="add", seasonal_periods=SEASON
        ).fit(disp=False)
        point = float(np.sum(fitted.forecast(horizon_days)))
        paths = fitted.simulate(
            horizon_days, anchor="end", repetitions=PATHS, rng=np.random.default_rng(seed)
        )
    sums = np.asarray(paths).reshape(horizon_days, -1).sum(axis=0)
    low, high = np.quantile(sums, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    if not all(math.isfinite(v) for v in (point, low, high)):
        raise InsufficientHistory("the usage history gives no stable forecast")
    return Forecast(
        tokens=max(0, round(point * scale)),
        lower=max(0, round(float(low) * scale)),
        upper=max(0, round(float(high) * scale)),
    )
