"""The simulated traffic as other gateways export it, with ground truth per token type.

The simulator (``testing/simulator.py``) plays MaaS: one counter of total tokens per replica,
user, tier and model. Here each of those counters is split into the token types other gateways
count, as deterministic, non-decreasing functions of its value (zero at zero, so a restart resets
every part): a third of the tokens (rounded down) is output, the rest input, and a quarter of the
input (rounded down) was read from a prompt cache. Cached input is *part of* input, as OpenAI's
``prompt_tokens`` includes ``cached_tokens`` and Envoy AI Gateway records both.

Ground truth is what scrapes could observe of each exported series: every rise between
consecutive samples, the whole value after a drop (a restart counts from zero), nothing for the
first sample of a counter that existed before the simulation began.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from chargeback.testing.simulator import Simulation, bucket_start

Split = Callable[[int], int]
"""A token type's part of a counter of total tokens."""

SPLITS: dict[str, Split] = {
    "input": lambda v: v - v // 3,
    "output": lambda v: v // 3,
    "cached_input": lambda v: (v - v // 3) // 4,
    "total": lambda v: v,
    "reasoning": lambda v: v // 12,  # part of output: never billed on its own
}
PLAN = "default"
"""The plan of gateways without one (the presets' defaultTier; Kong's default workspace)."""

TruthKey = tuple[str, str, str, str]
"""(user, plan, model, token type as the report names it)"""


@dataclass(frozen=True)
class Gateway:
    """How one gateway exports token counters."""

    name: str
    metric: Callable[[str], str]
    """The metric of a token type's series (one metric for all, or one per type)."""
    types: dict[str, str]
    """Exported token type (label value or metric) -> token type the report should show."""
    labels: Callable[[str, str, str, str], str]
    """(user, model, exported type, replica) -> the series' labels."""
    per_user: bool = True
    """False: one counter per replica and model, every user's tokens summed (vLLM)."""
    ignored: tuple[str, ...] = ()
    """Exported types a report must not read (a total beside its parts, reasoning)."""


ENVOY = Gateway(
    name="envoy-ai-gateway",
    metric=lambda _: "gen_ai_client_token_usage_sum",
    types={"input": "input", "output": "output", "cached_input": "cached_input"},
    labels=lambda user, model, kind, replica: (
        f'gen_ai_operation_name="chat",gen_ai_provider_name="openai",'
        f'gen_ai_original_model="{model}",gen_ai_request_model="{model}",'
        f'gen_ai_response_model="{model}-2026",gen_ai_token_type="{kind}",'
        f'user_id="{user}",pod="envoy-ai-gateway-{replica}"'
    ),
    ignored=("total", "reasoning"),
)
KONG = Gateway(
    name="kong",
    metric=lambda _: "ai_llm_tokens_total",
    types={"prompt_tokens": "input", "completion_tokens": "output"},
    labels=lambda user, model, kind, replica: (
        f'ai_provider="openai",ai_model="{model}",token_type="{kind}",workspace="{PLAN}",'
        f'consumer="{user}",instance="kong-{replica}"'
    ),
    ignored=("total_tokens",),
)
VLLM = Gateway(
    name="vllm",
    metric=lambda kind: f"vllm:{kind}_tokens_total",
    types={"prompt": "input", "generation": "output"},
    labels=lambda _, model, __, replica: f'model_name="{model}",engine="{replica}"',
    per_user=False,
)
EXPORTED_SPLIT = {
    "prompt_tokens": "input", "completion_tokens": "output", "total_tokens": "total",
    "prompt": "input", "generation": "output",
}  # fmt: skip
"""Exported type -> the split it carries (where the names differ)."""


@dataclass(frozen=True)
class Exported:
    """One exported series."""

    metric: str
    labels: str
    kind: str
    """The exported token type (label value or metric part)."""
    user: str
    model: str
    points: tuple[tuple[int, int], ...]


def exported(sim: Simulation, gateway: Gateway) -> list[Exported]:
    """Every series the gateway exports for the simulated traffic."""
    counters: dict[tuple[int, str, str], list[tuple[int, int]]] = {}
    if gateway.per_user:
        for (replica, (user, _, model)), points in sim.samples.items():
            if model:
                counters[(replica, user, model)] = points
    else:
        restarts: dict[int, list[int]] = defaultdict(list)
        for replica, t_ms in sim.scenario.restarts:
            restarts[replica].append(t_ms)
        merged: dict[tuple[int, str, str], list[list[tuple[int, int]]]] = defaultdict(list)
        for (replica, (_, _, model)), points in sim.samples.items():
            if model:
                merged[(replica, "", model)].append(points)
        counters = {k: summed(v, restarts[k[0]]) for k, v in merged.items()}
    series = []
    for (replica, user, model), points in sorted(counters.items()):
        for kind in (*gateway.types, *gateway.ignored):
            split = SPLITS[EXPORTED_SPLIT.get(kind, kind)]
            series.append(Exported(
                metric=gateway.metric(kind), labels=gateway.labels(user, model, kind, str(replica)),
                kind=kind, user=user, model=model,
                points=tuple((t_ms, split(value)) for t_ms, value in points),
            ))  # fmt: skip
    return series


def summed(series: list[list[tuple[int, int]]], resets: list[int]) -> list[tuple[int, int]]:
    """One counter from several.

    At each scrape, the sum of every counter's last value since the latest restart before it.
    """
    times = sorted({t for points in series for t, _ in points})
    result = []
    for t_ms in times:
        epoch = max((r for r in resets if r <= t_ms), default=0)
        total = 0
        for points in series:
            last = next((v for at, v in reversed(points) if epoch <= at <= t_ms), None)
            total += last or 0
        result.append((t_ms, total))
    return result


def openmetrics(sim: Simulation, gateway: Gateway, until_ms: int | None = None) -> Iterator[str]:
    """The gateway's token counters for the simulated traffic, as OpenMetrics text.

    ``until_ms``: leave out the samples after it (a test that reads the first days only).
    """
    by_metric: dict[str, list[Exported]] = defaultdict(list)
    for series in exported(sim, gateway):
        by_metric[series.metric].append(series)
    for metric, family in sorted(by_metric.items()):
        yield f"# TYPE {metric} unknown"
        for series in family:
            for t_ms, value in series.points:
                if until_ms is not None and t_ms > until_ms:
                    break
                yield f"{metric}{{{series.labels}}} {value} {t_ms / 1000:.3f}"
    yield "# EOF"


def truth(sim: Simulation, gateway: Gateway, start_ms: int, end_ms: int) -> dict[TruthKey, int]:
    """Observable tokens per (user, plan, model, token type) in buckets in [start, end).

    As a report should show them: the ignored types left out, cached input taken out of input.
    """
    totals: dict[TruthKey, int] = defaultdict(int)
    bucket, first_scrape = sim.scenario.bucket_ms, sim.scenario.start_ms
    for series in exported(sim, gateway):
        shown = gateway.types.get(series.kind)
        if shown is None:
            continue
        points = series.points
        # A counter scraped at the first scrape existed before: its value then is a baseline.
        previous = points[0][1] if points[0][0] == first_scrape else None
        for t_ms, value in points[1:] if previous is not None else points:
            used = value - previous if previous is not None and value >= previous else value
            previous = value
            if used and start_ms <= bucket_start(t_ms, bucket) < end_ms:
                totals[(series.user, PLAN, series.model, shown)] += used
    for (user, plan, model, shown), cached in list(totals.items()):
        if shown == "cached_input" and (user, plan, model, "input") in totals:
            totals[(user, plan, model, "input")] -= cached
    return {k: v for k, v in totals.items() if v}
