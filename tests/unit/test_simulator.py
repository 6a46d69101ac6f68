"""The simulator's ground truth conserves tokens: observable + lost == served."""

from __future__ import annotations

from chargeback.testing.simulator import HOUR_MS, Scenario, simulate

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def test_ground_truth_conserves_tokens() -> None:
    scenario = Scenario(
        start_ms=T0, hours=12, users=30, replicas=2, scrape_interval_ms=60_000,
        restarts=((0, T0 + 3 * HOUR_MS + 30_000), (1, T0 + 7 * HOUR_MS)),
        scrape_gaps=((T0 + 5 * HOUR_MS, T0 + 5 * HOUR_MS + 20 * 60_000),),
    )  # fmt: skip
    sim = simulate(scenario)
    observed = sum(sim.observable.values())
    # Tokens counted in the last scrape interval are scraped at the end, so nothing is pending.
    assert observed + sim.lost_tokens == sim.true_tokens
    assert sim.lost_tokens > 0
    assert observed > 0


def test_openmetrics_has_model_less_series_and_gaps() -> None:
    scenario = Scenario(
        start_ms=T0, hours=2, users=5, scrape_gaps=((T0 + HOUR_MS, T0 + 2 * HOUR_MS),)
    )
    lines = list(simulate(scenario).openmetrics())
    assert lines[0] == "# TYPE authorized_hits unknown"
    assert lines[-1] == "# EOF"
    assert any("model=" not in line for line in lines[1:-1])
    stamps = {float(line.rsplit(" ", 1)[1]) * 1000 for line in lines[1:-1]}
    assert not any(T0 + HOUR_MS <= t < T0 + 2 * HOUR_MS for t in stamps)
