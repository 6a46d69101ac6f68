"""Reports read through a real Thanos Querier (v0.42.4) over two Prometheus replicas, as
OpenShift monitoring runs them: external labels ``prometheus_replica=a|b``, a sidecar each, and
``--query.replica-label=prometheus_replica``. Replica ``b`` was down for three hours of day two,
so the deduplicated answer fills that window from ``a``.

Covered: the querier's range semantics, deduplication across one replica's outage, and two
Limitador restarts, one of which grows back above its old value within the hour (seen only
because the collector does not trust Thanos' ``resets()``, which is 0 for every series:
thanos-io/thanos#3644). Not covered: sidecar uploads and compaction (no object storage here).

Where replica b went down and came back, the deduplication skips samples of about two scrape
intervals: tokens can move to the next hour, never out of the day. Those hours are left out of
the per-hour comparison; every other hour, and every line of each day, is exact.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chargeback.adapters.ledger import Ledger
from chargeback.adapters.prometheus import PartialResponse, PrometheusClient, PrometheusSettings
from chargeback.api.source import SourceSpec
from chargeback.services.collect import Collector
from chargeback.testing import pki
from chargeback.testing.authproxy import PrometheusProxy, write_token
from chargeback.testing.simulator import HOUR_MS, Scenario, Simulation, bucket_start, simulate
from chargeback.testing.thanos import ThanosQuerier
from tests.integration.conftest import T0, day_two_report, ledger_totals
from tests.integration.test_contracts import PRICES, lines

DAY_MS = 24 * HOUR_MS
END = T0 + 2 * DAY_MS
SCENARIO = Scenario(
    start_ms=T0, hours=48, users=60, replicas=2, scrape_interval_ms=300_000, seed=23,
    restarts=((1, T0 + 9 * HOUR_MS + 90_000), (0, T0 + 30 * HOUR_MS)),
)  # fmt: skip
DOWN = (T0 + 28 * HOUR_MS + 600_000, T0 + 31 * HOUR_MS)
"""When replica b was down: its TSDB holds nothing then."""


@dataclass
class HA:
    sim: Simulation
    querier: ThanosQuerier


def _without(lines: Iterable[str], start_ms: int, end_ms: int) -> Iterator[str]:
    """OpenMetrics lines but the samples in [start, end), as a replica that was down has them."""
    for line in lines:
        stamp = line.rsplit(" ", 1)[-1]
        if line.startswith("#") or not start_ms <= float(stamp) * 1000 < end_ms:
            yield line


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HA]:
    work = tmp_path_factory.mktemp("thanos")
    sim = simulate(SCENARIO)
    full = sim.write_openmetrics(work / "a.om")
    partial = work / "b.om"
    partial.write_text("\n".join(_without(sim.openmetrics(), *DOWN)) + "\n")
    with ThanosQuerier([full, partial], work / "querier") as querier:
        yield HA(sim, querier)


def _raw(querier: ThanosQuerier, promql: str, at_ms: int) -> list[dict[str, object]]:
    """An instant query with deduplication off: what each replica holds."""
    params = urllib.parse.urlencode({"query": promql, "time": at_ms / 1000, "dedup": "false"})
    url = f"{querier.url}/api/v1/query?{params}"
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback
        found: list[dict[str, object]] = json.load(response)["data"]["result"]
    return found


def test_the_querier_has_left_open_ranges_whatever_its_version_says(ha: HA) -> None:
    client = PrometheusClient(PrometheusSettings(ha.querier.url))
    # 0.42.4 reads like a Prometheus before 3, whose ranges are closed; the engine's are not.
    assert client.check_build() == "0.42.4"
    assert client.closed_ranges() is False
    assert client.semantics() == (
        "build 0.42.4: range edges left-open, no anchored ranges (probed)"
    )


def _per_line(totals: dict[tuple[str, str, str, int], int], day: int) -> dict[tuple[str, ...], int]:
    """Tokens per (user, tier, model) of one day's buckets."""
    lines: dict[tuple[str, ...], int] = {}
    for (user, tier, model, bucket), count in totals.items():
        if T0 + day * DAY_MS <= bucket < T0 + (day + 1) * DAY_MS and count:
            lines[(user, tier, model)] = lines.get((user, tier, model), 0) + count
    return lines


def _away_from_the_outage(
    totals: dict[tuple[str, str, str, int], int],
) -> dict[tuple[str, str, str, int], int]:
    """The hours that neither hold nor follow an edge of replica b's outage."""
    edges = {bucket_start(t, HOUR_MS) for t in DOWN}
    near = edges | {edge + HOUR_MS for edge in edges}
    return {key: count for key, count in totals.items() if key[3] not in near and count}


def test_two_days_with_a_replica_outage_are_exact_through_the_querier(
    ha: HA, tmp_path: Path
) -> None:
    # The pair really differs: b holds nothing while it was down, a does.
    during = DOWN[0] + HOUR_MS
    held = {s["metric"]["prometheus_replica"] for s in _raw(ha.querier, "authorized_hits", during)}  # type: ignore[index]
    assert held == {"a"}
    # The collector through TLS and a bearer token in front of the querier, as on OpenShift.
    ca = pki.make_ca(tmp_path, "service-ca")
    serving = pki.make_serving_cert(ca, tmp_path, "thanos-querier")
    token = write_token(tmp_path / "token", "sa-token")
    with PrometheusProxy(ha.querier.url, serving, "sa-token") as proxy:
        settings = PrometheusSettings(proxy.url, token_file=token, ca_file=ca.cert)
        ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
        result = Collector(PrometheusClient(settings), ledger).collect(SourceSpec(), T0, END)
    assert result.watermark_ms == END
    got, truth = ledger_totals(ledger, result.source_id), ha.sim.truth(T0, END)
    assert _away_from_the_outage(got) == _away_from_the_outage(truth)
    for day in (0, 1):
        assert _per_line(got, day) == _per_line(truth, day)
    # And `chargeback report` as users run it, against the querier, on the outage's day.
    tiers = [{"name": t, "price": p} for t, p in PRICES.items()]
    document = day_two_report(ha.querier, tmp_path, {"currency": "USD", "tiers": tiers})
    assert lines(document, "user", "tier", "model") == _per_line(truth, 1)


def test_a_store_that_does_not_answer_stops_the_collection_and_is_named(
    ha: HA, tmp_path: Path
) -> None:
    # Thanos answers with the replicas it reached and a warning: never taken as all the data.
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    client = PrometheusClient(PrometheusSettings(ha.querier.url))
    collector = Collector(client, ledger)
    down = ha.querier.replicas[1]
    down.sidecar.stop()
    try:
        # Counts too: "no data" from a partial answer would otherwise become a recorded gap.
        with pytest.raises(PartialResponse):
            client.scalar_count("count(authorized_hits)", END)
        with pytest.raises(
            PartialResponse, match=rf"only some of its stores.*127\.0\.0\.1:{down.grpc}"
        ):
            collector.collect(SourceSpec(), T0, END)
        assert [ledger_totals(ledger, s.id) for s in ledger.list_sources()] in ([], [{}])
    finally:
        down.sidecar.start()
        ha.querier.wait_stores()
    # Back: collected from the start, exact per line.
    result = collector.collect(SourceSpec(), T0, END)
    got, truth = ledger_totals(ledger, result.source_id), ha.sim.truth(T0, END)
    assert [_per_line(got, day) for day in (0, 1)] == [_per_line(truth, day) for day in (0, 1)]
