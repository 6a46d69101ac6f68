"""GPU collection: allocation and utilisation per model into the ledger.

A source of kind ``gpu``, collected by the one collection loop (``services/watermark.py``) with
the same durability rules as tokens: closed buckets only, a watermark per source, one transaction
per run of buckets, and buckets where Prometheus holds no kube-state-metrics data at all recorded
as gaps. Each run of up to a week of buckets costs four range queries with a subquery at the
scrape resolution, so catching up two months of history takes a few dozen queries.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from chargeback.adapters.ledger import Ledger, SourceKind, SourceRecord, Step
from chargeback.adapters.prometheus import PrometheusClient, PrometheusQueryError, QueryTooLarge
from chargeback.domain import promql
from chargeback.domain.infra import GpuRow, InfraSource, UtilizationRow
from chargeback.domain.series import SeriesKey
from chargeback.domain.usage import Gap
from chargeback.domain.value import InfraUsage
from chargeback.services.collect import CollectError
from chargeback.services.watermark import advance

log = logging.getLogger(__name__)

CHUNK_BUCKETS = 168
NO_KSM_GAP = (
    "Prometheus holds no kube-state-metrics data (kube_node_labels) for this range: "
    "GPU allocation unknown"
)
PRESENCE_METRIC = "kube_node_labels"


@dataclass(frozen=True)
class _Bucket:
    present: bool
    gpu: list[GpuRow]
    utilization: list[UtilizationRow]


class InfraCollector:
    """Advances one GPU source's ledger to a time, bucket by bucket."""

    def __init__(
        self,
        prometheus: PrometheusClient,
        ledger: Ledger,
        source: InfraSource,
        bucket_ms: int,
    ) -> None:
        if bucket_ms % source.resolution_ms:
            raise ValueError(
                f"the bucket ({bucket_ms} ms) must be a multiple of the GPU resolution "
                f"({source.resolution_ms} ms)"
            )
        self.prometheus = prometheus
        self.ledger = ledger
        self.source = source
        self.bucket_ms = bucket_ms
        self.source_id = source.source_id()
        self._chunk = CHUNK_BUCKETS

    def collect(self, start_ms: int, end_ms: int) -> int:
        """Collect every closed bucket up to ``end_ms``; return the ledger's watermark."""
        bucket = self.bucket_ms
        record = self.ledger.source(self.source_id)
        if record is None:
            first = start_ms - start_ms % bucket
            record = self.ledger.bootstrap(
                SourceRecord(self.source_id, asdict(self.source), "", bucket, first, first, True,
                             kind=SourceKind.GPU),
                {},
            )  # fmt: skip
        end = end_ms - end_ms % bucket
        if end <= record.watermark_ms:
            return record.watermark_ms
        self._chunk = CHUNK_BUCKETS
        done = advance(self.ledger, self.source_id, self, watermark_ms=record.watermark_ms,
                       end_ms=end, bucket_ms=bucket)  # fmt: skip
        if done.conflicted:
            # Another collector got ahead: what the ledger holds is settled as far as it says.
            stored = self.ledger.source(self.source_id)
            return stored.watermark_ms if stored else done.watermark_ms
        return done.watermark_ms

    def plan(self, a: int, end: int) -> list[Step]:
        """Steps for up to a week of buckets from ``a``: runs with data, runs without (gaps)."""
        while True:
            upto = min(end, a + self._chunk * self.bucket_ms)
            try:
                return self._steps(a, self._fetch(a, upto))
            except QueryTooLarge:
                if self._chunk == 1:
                    raise
                self._chunk = max(1, self._chunk // 4)

    def applied(self, step: Step) -> None:
        """Nothing to carry between steps: GPU usage is a gauge."""

    def usage(self, start_ms: int, end_ms: int) -> InfraUsage:
        """What the ledger holds for buckets starting in [start, end)."""
        record = self.ledger.source(self.source_id)
        gaps = self.ledger.gaps(self.source_id)
        if record is not None and record.start_ms > start_ms:
            gaps.insert(0, Gap(start_ms, record.start_ms, "before the ledger's GPU history begins"))
        return InfraUsage(
            gpu=tuple(self.ledger.gpu_usage(self.source_id, start_ms, end_ms)),
            utilization=tuple(self.ledger.utilization(self.source_id, start_ms, end_ms)),
            gaps=tuple(gaps),
            through_ms=record.watermark_ms if record else start_ms,
        )

    def _fetch(self, a: int, b: int) -> dict[int, _Bucket]:
        """Per bucket start in [a, b): presence and integrals, from four range queries."""
        bucket, resolution = self.bucket_ms, self.source.resolution_ms
        span = bucket - (1 if self.prometheus.closed_ranges() else 0)
        first = a + bucket
        utilization = self.source.utilization()
        present, gpus, busy, observed = (
            self.prometheus.matrix(query, first, b, bucket)
            for query in (
                promql.present(promql.range_of(PRESENCE_METRIC, span)),
                promql.integral(self.source.gpus(), span, resolution),
                promql.integral(promql.sum_by(["model"], utilization), span, resolution),
                promql.integral(promql.count_by(["model"], utilization), span, resolution),
            )
        )
        present_at = set().union(*(points for points in present.values()))
        result: dict[int, _Bucket] = {
            end - bucket: _Bucket(end in present_at, [], []) for end in range(first, b + 1, bucket)
        }
        for key, points in gpus.items():
            labels = _labels(key, "the GPU query")
            for end, value in points.items():
                gpu_ms = _whole(value * resolution, "GPU allocation")
                if gpu_ms:
                    row = GpuRow(end - bucket, labels["model"], labels.get("product", ""), gpu_ms)
                    result[end - bucket].gpu.append(row)
        for key, points in busy.items():
            model = _labels(key, "the utilisation query")["model"]
            counts = observed.get(key, {})
            for end, value in points.items():
                seen = _whole(counts.get(end, 0.0) * resolution, "utilisation")
                busy_ms = _whole(value * resolution, "utilisation")
                result[end - bucket].utilization.append(
                    UtilizationRow(end - bucket, model, busy_ms, seen)
                )
        return result

    def _steps(self, watermark: int, buckets: dict[int, _Bucket]) -> list[Step]:
        """Runs of buckets with data as one step each, runs without as one gap each."""
        steps: list[Step] = []
        run: list[int] = []
        for start in [*sorted(buckets), None]:
            if run and (start is None or buckets[start].present != buckets[run[0]].present):
                present = buckets[run[0]].present
                end = run[-1] + self.bucket_ms
                steps.append(Step(
                    source_id=self.source_id, from_ms=watermark, to_ms=end, usage=[], states={},
                    gap=None if present else Gap(watermark, end, NO_KSM_GAP),
                    gpu=[row for s in run for row in buckets[s].gpu],
                    utilization=[row for s in run for row in buckets[s].utilization],
                ))  # fmt: skip
                watermark, run = end, []
            if start is not None:
                run.append(start)
        return steps


def _labels(key: SeriesKey, what: str) -> dict[str, str]:
    labels = dict(key)
    if "model" not in labels:
        raise CollectError(f"{what} returned a series without a model label: {labels}")
    return labels


def _whole(value: float, what: str) -> int:
    if value < 0:
        raise PrometheusQueryError(f"negative {what} ({value}) from Prometheus")
    return round(value)
