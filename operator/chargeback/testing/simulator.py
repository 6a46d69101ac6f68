"""Simulated AI-gateway traffic with ground truth, for tests, benchmarks and the demo.

It plays Limitador: per-replica counters keyed by (user, tier, model) grow by each response's
tokens; Prometheus scrapes every replica at an interval (except while it is down); replicas
restart (their counters vanish and start again from zero); users appear mid-run and go quiet;
some hits carry no ``model`` label (plain request limits). The output is OpenMetrics text with
timestamps, to be backfilled into a real Prometheus, plus the ground truth: the tokens that
scrapes could observe per (user, tier, model, bucket), and what was truly lost.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

HOUR_MS = 3_600_000
TIERS = ("free", "premium", "enterprise")
MODELS = ("granite-3-8b", "llama-3-70b", "mistral-7b", "qwen-2-72b", "phi-3-mini")

Key = tuple[str, str, str]  # (user, tier, model); model "" for hits without a model label


@dataclass(frozen=True)
class Scenario:
    """What to simulate. Times are epoch milliseconds."""

    start_ms: int
    hours: int = 72
    users: int = 200
    replicas: int = 2
    scrape_interval_ms: int = 300_000
    seed: int = 1
    metric: str = "authorized_hits"
    restarts: tuple[tuple[int, int], ...] = ()
    """(replica index, time) of Limitador restarts."""
    scrape_gaps: tuple[tuple[int, int], ...] = ()
    """[start, end) ranges during which Prometheus did not scrape."""
    bucket_ms: int = HOUR_MS
    late_joiners: float = 0.3
    """Share of users that appear only after the start."""
    quitters: float = 0.2
    """Share of users that go quiet before the end."""
    model_less_hits: bool = True
    growth_per_day: float = 0.0
    """Traffic growth per day (0.02: 2% more requests each day), compounding."""
    weekly: tuple[float, ...] = ()
    """Request-rate factors Monday..Sunday (UTC); empty: the same every day."""

    def demand(self, t_ms: int) -> float:
        """The request-rate factor at ``t_ms`` from growth and weekly seasonality."""
        days = (t_ms - self.start_ms) / 86_400_000
        factor = (1 + self.growth_per_day) ** days
        if self.weekly:
            weekday = (t_ms // 86_400_000 + 3) % 7  # 1970-01-01 was a Thursday
            factor *= self.weekly[weekday]
        return float(factor)


@dataclass
class Simulation:
    """The simulated history and its ground truth."""

    scenario: Scenario
    samples: dict[tuple[int, Key], list[tuple[int, int]]] = field(default_factory=dict)
    """(replica, key) -> [(t_ms, value)] as scraped."""
    observable: dict[tuple[str, str, str, int], int] = field(default_factory=dict)
    """(user, tier, model, bucket start) -> tokens that scrapes could observe (model != "")."""
    true_tokens: int = 0
    """All tokens served (with a model label), observable or not."""
    lost_tokens: int = 0
    """Tokens no scrape could see: counted, then reset before the next scrape."""
    pre_existing: dict[tuple[int, Key], int] = field(default_factory=dict)
    """Counter values before the simulation started (not usage of the simulated range)."""

    def openmetrics(self, *more: Iterable[str]) -> Iterator[str]:
        """OpenMetrics text lines, then the lines of ``more`` histories, then ``# EOF``."""
        metric = self.scenario.metric
        yield f"# TYPE {metric} unknown"
        for (replica, (user, tier, model)), points in sorted(self.samples.items()):
            labels = f'user="{user}",tier="{tier}"'
            if model:
                labels += f',model="{model}"'
            labels += f',limitador_namespace="maas/{tier}-route",pod="limitador-{replica}"'
            for t_ms, value in points:
                yield f"{metric}{{{labels}}} {value} {t_ms / 1000:.3f}"
        for lines in more:
            yield from lines
        yield "# EOF"

    def write_openmetrics(self, path: Path, *more: Iterable[str]) -> Path:
        """Write :meth:`openmetrics` to ``path``."""
        with path.open("w") as out:
            for line in self.openmetrics(*more):
                out.write(line + "\n")
        return path

    def truth(self, start_ms: int, end_ms: int) -> dict[tuple[str, str, str, int], int]:
        """Observable tokens per (user, tier, model, bucket) for buckets in [start, end)."""
        return {
            key: tokens
            for key, tokens in self.observable.items()
            if start_ms <= key[3] < end_ms and tokens
        }


def bucket_start(t_ms: int, bucket_ms: int) -> int:
    """Start of the bucket (a, b] holding ``t_ms``."""
    return ((t_ms - 1) // bucket_ms) * bucket_ms


def simulate(scenario: Scenario) -> Simulation:
    """Run the scenario; deterministic for a given seed."""
    rng = random.Random(scenario.seed)
    sim = Simulation(scenario)
    end_ms = scenario.start_ms + scenario.hours * HOUR_MS
    users = _users(scenario, rng, end_ms)
    counters: dict[tuple[int, Key], int] = {}
    last_scraped: dict[tuple[int, Key], int] = {}
    unscraped: dict[tuple[int, Key], int] = defaultdict(int)
    restarts = sorted(scenario.restarts, key=lambda r: r[1])
    observable: dict[tuple[str, str, str, int], int] = defaultdict(int)

    # Counters of early users exist before the first scrape: a baseline, not simulated usage.
    for user, tier, models, joined, _ in users:
        if joined == scenario.start_ms:
            for model in models:
                key = (rng.randrange(scenario.replicas), (user, tier, model))
                counters[key] = rng.randrange(1_000, 500_000)
                sim.pre_existing[key] = counters[key]

    step = scenario.scrape_interval_ms
    for t in range(scenario.start_ms, end_ms + 1, step):
        if t > scenario.start_ms:
            _traffic(
                scenario, rng, users,
                counters=counters, unscraped=unscraped, sim=sim, start=t - step, end=t,
            )  # fmt: skip
        while restarts and restarts[0][1] <= t:
            replica, _ = restarts.pop(0)
            for key in [k for k in counters if k[0] == replica]:
                sim.lost_tokens += unscraped.pop(key, 0) if key[1][2] else 0
                del counters[key]
        if any(gap_start <= t < gap_end for gap_start, gap_end in scenario.scrape_gaps):
            continue
        for key, value in counters.items():
            sim.samples.setdefault(key, []).append((t, value))
            previous = last_scraped.get(key)
            seen = unscraped.pop(key, 0)
            if previous is not None and value >= previous and seen > value - previous:
                # A reset hidden by growth: the scrape shows less than was counted.
                sim.lost_tokens += seen - (value - previous) if key[1][2] else 0
                seen = value - previous
            last_scraped[key] = value
            user, tier, model = key[1]
            if model and seen:
                observable[(user, tier, model, bucket_start(t, scenario.bucket_ms))] += seen
    sim.observable = dict(observable)
    return sim


def _users(
    scenario: Scenario, rng: random.Random, end_ms: int
) -> list[tuple[str, str, tuple[str, ...], int, int]]:
    users = []
    span = end_ms - scenario.start_ms
    for index in range(scenario.users):
        tier = TIERS[index % len(TIERS)]
        name = f"user{index:04d}-{rng.getrandbits(32):08x}"
        models = tuple(rng.sample(MODELS, rng.randint(1, 3)))
        joined = scenario.start_ms
        if rng.random() < scenario.late_joiners:
            joined += rng.randrange(span // 10, span // 2)
        left = end_ms
        if rng.random() < scenario.quitters:
            left = joined + rng.randrange(HOUR_MS, max(HOUR_MS + 1, end_ms - joined))
        users.append((name, tier, models, joined, left))
    return users


def _traffic(
    scenario: Scenario,
    rng: random.Random,
    users: list[tuple[str, str, tuple[str, ...], int, int]],
    *,
    counters: dict[tuple[int, Key], int],
    unscraped: dict[tuple[int, Key], int],
    sim: Simulation,
    start: int,
    end: int,
) -> None:
    """Requests in (start, end]: each adds its tokens to one replica's counter."""
    for user, tier, models, joined, left in users:
        if not joined < end <= left:
            continue
        requests = rng.choice((0, 0, 1, 1, 2, 3))
        if scenario.growth_per_day or scenario.weekly:
            requests = int(requests * scenario.demand(end) + rng.random())
        for _ in range(requests):
            replica = rng.randrange(scenario.replicas)
            model = rng.choice(models)
            tokens = rng.randint(20, 4_000) * (3 if tier == "enterprise" else 1)
            key = (replica, (user, tier, model))
            counters[key] = counters.get(key, 0) + tokens
            unscraped[key] += tokens
            sim.true_tokens += tokens
            if scenario.model_less_hits:
                plain = (replica, (user, tier, ""))
                counters[plain] = counters.get(plain, 0) + 1
