"""The collection loop's pause of the cyclic garbage collector, and its checks of a planner."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from chargeback.adapters.ledger import Ledger, SourceRecord, Step
from chargeback.services.watermark import _Pause, advance


def test_the_collector_is_paused_inside_and_resumed_after_the_last_thread_leaves() -> None:
    pause = _Pause()
    assert gc.isenabled()
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with pause.held():
            inside.set()
            leave.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    assert inside.wait(5)
    with pause.held():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread is still inside
    leave.set()
    thread.join(5)
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled() -> None:
    pause = _Pause()
    gc.disable()
    try:
        with pause.held():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_resumes_when_a_step_fails() -> None:
    pause = _Pause()
    with pytest.raises(RuntimeError), pause.held():
        raise RuntimeError("step failed")
    assert gc.isenabled()


class _Planner:
    """Plans lazily: steps of one bucket each, the second one from the wrong start."""

    def __init__(self, wrong_at: int) -> None:
        self.wrong_at = wrong_at
        self.built: list[int] = []

    def plan(self, a: int, end: int) -> Iterator[Step]:
        for start in (a, a + 10):
            self.built.append(start)
            origin = start + 1 if start == self.wrong_at else start
            yield Step("s", origin, origin + 10, [], {}, False, True)

    def applied(self, step: Step) -> None:
        pass


def test_a_lazy_plan_is_applied_step_by_step_and_a_misplaced_step_stops_the_loop() -> None:
    ledger = Ledger("sqlite://")
    ledger.bootstrap(SourceRecord("s", {}, "m", 10, 0, 0, True), {})
    planner = _Planner(wrong_at=10)
    with pytest.raises(RuntimeError, match="planned a step from 11, not from 10"):
        advance(ledger, "s", planner, watermark_ms=0, end_ms=40, bucket_ms=10)
    record = ledger.source("s")
    assert record is not None
    assert record.watermark_ms == 10  # the first step stands; the misplaced one wrote nothing
    assert planner.built == [0, 10]
    assert gc.isenabled()
    ledger.close()
