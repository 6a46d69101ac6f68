"""GPU allocation and utilisation per model: real Prometheus against the serving simulator."""

from __future__ import annotations

from collections import defaultdict

import pytest

from chargeback.adapters.ledger import Ledger
from chargeback.adapters.prometheus import PrometheusClient, PrometheusSettings
from chargeback.domain.infra import InfraSource
from chargeback.services.collect import CollectError
from chargeback.services.infra import NO_KSM_GAP, InfraCollector
from chargeback.testing.simulator import HOUR_MS
from tests.integration.conftest import END, SERVING, T0, Traffic

SOURCE = InfraSource(resolution_ms=SERVING.scrape_interval_ms)


def stored_gpu(ledger: Ledger, source_id: str) -> dict[tuple[str, str, int], int]:
    return {
        (row.model, row.product, row.bucket_start_ms): row.gpu_ms
        for row in ledger.gpu_usage(source_id, 0, 2**62)
    }


def test_gpu_hours_per_model_equal_ground_truth(traffic: Traffic, ledger_dsn: str) -> None:
    ledger = Ledger(ledger_dsn)
    collector = InfraCollector(traffic.client(), ledger, SOURCE, HOUR_MS)
    watermark = collector.collect(T0 - 5 * HOUR_MS, END)

    assert watermark == END
    want = {k: v for k, v in traffic.serving.gpu_ms.items() if v}
    assert stored_gpu(ledger, SOURCE.source_id()) == want
    # The notebook without a model label, the Pending pod and the CPU pod never count.
    assert {model for model, _, _ in want} == {d.model for d in SERVING.deployments}
    utilization = {
        (row.model, row.bucket_start_ms): (row.busy_ms, row.observed_gpu_ms)
        for row in ledger.utilization(SOURCE.source_id(), 0, 2**62)
    }
    truth = {
        key: (traffic.serving.busy_ms[key], traffic.serving.observed_gpu_ms[key])
        for key in traffic.serving.observed_gpu_ms
    }
    assert utilization == truth
    # Before the simulated history Prometheus has no kube-state-metrics: a recorded gap (the
    # first scrape, at T0, closes the bucket (T0 - 1h, T0]).
    assert [(g.start_ms, g.end_ms, g.reason) for g in ledger.gaps(SOURCE.source_id())] == [
        (T0 - 5 * HOUR_MS, T0 - HOUR_MS, NO_KSM_GAP)
    ]
    # Collecting again, or in smaller steps, changes nothing.
    assert collector.collect(T0, END) == END
    assert stored_gpu(ledger, SOURCE.source_id()) == want
    ledger.close()


def test_collection_in_steps_equals_one_catch_up(traffic: Traffic, tmp_path: object) -> None:
    ledger = Ledger("sqlite://")
    collector = InfraCollector(traffic.client(), ledger, SOURCE, HOUR_MS)
    for end in range(T0 + 7 * HOUR_MS, END + 1, 13 * HOUR_MS):
        collector.collect(T0, end)
    collector.collect(T0, END)
    assert stored_gpu(ledger, SOURCE.source_id()) == {
        k: v for k, v in traffic.serving.gpu_ms.items() if v and k[2] >= T0
    }


def test_gpu_hours_stay_exact_per_model_over_any_range(traffic: Traffic) -> None:
    ledger = Ledger("sqlite://")
    collector = InfraCollector(traffic.client(), ledger, SOURCE, HOUR_MS)
    collector.collect(T0, END)
    usage = collector.usage(T0 + 24 * HOUR_MS, T0 + 48 * HOUR_MS)
    by_model: dict[str, int] = defaultdict(int)
    for row in usage.gpu:
        by_model[row.model] += row.gpu_ms
    day = (T0 + 24 * HOUR_MS, T0 + 48 * HOUR_MS)
    assert dict(by_model) == traffic.serving.gpu_ms_by_model(*day)
    # 4 GPUs of llama for 24 hours, exactly.
    assert by_model["llama-3-70b"] == 4 * 24 * HOUR_MS


def test_a_custom_query_without_a_model_label_is_a_clear_error(traffic: Traffic) -> None:
    query = "sum(kube_pod_container_resource_requests)"
    source = InfraSource(resolution_ms=60_000, gpu_query=query)
    collector = InfraCollector(traffic.client(), Ledger("sqlite://"), source, HOUR_MS)
    with pytest.raises(CollectError, match="without a model label"):
        collector.collect(T0, T0 + 2 * HOUR_MS)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="not a Prometheus label name"):
        InfraSource(model_label="bad-label")
    with pytest.raises(ValueError, match="multiple of the GPU resolution"):
        InfraCollector(
            PrometheusClient(PrometheusSettings("http://127.0.0.1:9")),
            Ledger("sqlite://"),
            InfraSource(resolution_ms=7_000),
            HOUR_MS,
        )
