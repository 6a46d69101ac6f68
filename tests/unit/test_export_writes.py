"""When exports are written: the open period's only when it changes, its dataThrough aside
(which moves on every refresh), or once a bucket; a report created again gets its own."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from chargeback.adapters.exports import Owner
from chargeback.api.pricing import TierPricingSpec
from chargeback.api.report import Attribution
from chargeback.domain.attribution import TeamResolver
from chargeback.domain.periods import Period
from chargeback.domain.pricing import PriceBook, PriceVersion
from chargeback.domain.reports import build_document
from chargeback.domain.usage import UsageRow
from chargeback.services import exports
from chargeback.services.exports import ExportWriter
from chargeback.services.report import Rendered

HOUR = 3_600_000
PERIOD = Period(0, 24 * HOUR)
SPEC = TierPricingSpec.model_validate(
    {"currency": "USD", "tiers": [{"name": "free", "price": "1"}]}
)
BOOK = PriceBook([PriceVersion(1, 0, SPEC, "d1")])
OWNER = Owner("team-a", "daily", "uid-1")


def rendered(tokens: int, through_ms: int, user: str = "alice") -> Rendered:
    rows = [UsageRow(0, user, "free", "granite", (), tokens)]
    teams = TeamResolver(Attribution())
    document = build_document(report="team-a/daily", period=PERIOD, usage=rows, book=BOOK,
                              teams=teams, data_through_ms=through_ms)  # fmt: skip
    return Rendered(PERIOD, document, False, None)


class Recorder:
    """Stands in for the API server: records each write; fails when told to."""

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []
        self.fail = False

    def __call__(
        self, api: object, owner: Owner, start: str, renditions: Mapping[str, str]
    ) -> list[str]:
        if self.fail:
            raise RuntimeError("the API server is away")
        self.documents.append(json.loads(renditions["report.json"]))
        return [f"{owner.name}-{start}"]


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(exports, "write_export", recorder)
    return recorder


def test_the_open_period_is_written_when_it_changes_or_once_a_bucket(writes: Recorder) -> None:
    writer = ExportWriter(api=None, bucket_ms=HOUR)
    names = writer.open_period(OWNER, rendered(100, 10 * HOUR))
    assert names == ["daily-1970-01-01T00:00:00Z"]
    assert len(writes.documents) == 1
    # Refreshes at rest: dataThrough moves, nothing else does; the names are still given.
    for minutes in (1, 30, 59):
        assert writer.open_period(OWNER, rendered(100, 10 * HOUR + minutes * 60_000)) == names
    assert len(writes.documents) == 1
    # A whole bucket later the export says so.
    writer.open_period(OWNER, rendered(100, 11 * HOUR))
    assert [d["dataThrough"] for d in writes.documents] == [
        "1970-01-01T10:00:00Z",
        "1970-01-01T11:00:00Z",
    ]
    # New numbers are written at once.
    writer.open_period(OWNER, rendered(101, 11 * HOUR + 1))
    assert writes.documents[-1]["totals"]["tokens"] == 101
    assert len(writes.documents) == 3


def test_a_failed_write_a_new_report_and_a_forgotten_one_are_written_again(
    writes: Recorder,
) -> None:
    writer = ExportWriter(api=None, bucket_ms=HOUR)
    writes.fail = True
    with pytest.raises(RuntimeError):
        writer.open_period(OWNER, rendered(100, HOUR))
    writes.fail = False
    writer.open_period(OWNER, rendered(100, HOUR))
    assert len(writes.documents) == 1  # the failure was not taken as written
    # Deleted and created again: the old ConfigMaps went with the old object.
    writer.open_period(Owner(OWNER.namespace, OWNER.name, "uid-2"), rendered(100, HOUR))
    assert len(writes.documents) == 2
    writer.forget("team-a/daily")
    writer.open_period(Owner(OWNER.namespace, OWNER.name, "uid-2"), rendered(100, HOUR))
    assert len(writes.documents) == 3
    # Another report of the same numbers has exports of its own.
    writer.open_period(Owner(OWNER.namespace, "weekly", "uid-3"), rendered(100, HOUR))
    assert len(writes.documents) == 4


def test_only_the_times_of_data_through_are_left_out(writes: Recorder) -> None:
    """The cost-to-value section's dataThrough moves too; label values are compared whole,
    even one that reads like the field."""
    writer = ExportWriter(api=None, bucket_ms=HOUR)

    def valued(minutes: int, user: str = "alice") -> Rendered:
        shown = rendered(100, 10 * HOUR + minutes * 60_000, user)
        section = {"available": True, "reason": "", "dataThrough": f"10:{minutes:02d}"}
        return replace(shown, document=replace(shown.document, cost_to_value=section))

    writer.open_period(OWNER, valued(0))
    writer.open_period(OWNER, valued(5))
    assert len(writes.documents) == 1
    writer.open_period(OWNER, valued(5, user='a", "dataThrough": "1'))
    writer.open_period(OWNER, valued(5, user='a", "dataThrough": "2'))
    assert [d["lines"][0]["user"] for d in writes.documents[1:]] == [
        'a", "dataThrough": "1',
        'a", "dataThrough": "2',
    ]
