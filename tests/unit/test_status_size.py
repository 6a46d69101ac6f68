"""Status stays small at any cardinality: 10k users, long names, full history."""

from __future__ import annotations

import json

from benchmarks.operator_bench import status_at

from chargeback.api.report import UsageReportStatus


def test_status_of_ten_thousand_users_stays_under_64_kib() -> None:
    status = status_at(10_000)
    size = len(json.dumps(status).encode())
    assert size < 64 * 1024, size
    assert len(status["byTeam"]) == 50  # of 300 teams: the largest, the rest in the exports
    UsageReportStatus.model_validate(status)  # and it fits the CRD's bounds
