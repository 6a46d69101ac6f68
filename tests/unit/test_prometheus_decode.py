"""Decoding Prometheus answers: whole numbers of tokens, range answers by evaluation time."""

from __future__ import annotations

import re

import orjson
import pytest

from chargeback.adapters.prometheus_answers import (
    PartialResponse,
    PrometheusQueryError,
    as_int,
    by_time,
    results,
)


@pytest.mark.parametrize(
    ("text", "whole"),
    [("0", 0), ("123", 123), ("1e+06", 1_000_000), ("2.0", 2),
     ("12345678901234567890", 12_345_678_901_234_567_890)],
)  # fmt: skip
def test_counter_values_are_whole_numbers_of_tokens(text: str, whole: int) -> None:
    assert as_int(text, "q") == whole


@pytest.mark.parametrize("text", ["1.5", "-3", "-0.5", "NaN", "+Inf", "-Inf"])
def test_anything_else_is_refused_naming_the_query(text: str) -> None:
    with pytest.raises(PrometheusQueryError, match=re.escape(f"{text!r} from 'q'")):
        as_int(text, "q")


def test_a_value_that_is_no_number_is_an_unexpected_answer() -> None:
    # The client turns ValueError into "answered ... in an unexpected shape".
    with pytest.raises(ValueError, match="could not convert"):
        as_int("x", "q")


def test_a_range_answer_is_one_vector_per_evaluation_time() -> None:
    body = orjson.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"__name__": "m", "user": "a", "model": "x"},
         "values": [[3600, "5"], [7200, "7"]]},
        {"metric": {"user": "b", "model": "x"}, "values": [[7200.0, "9"]]},
    ]}})  # fmt: skip
    vectors = by_time(body, "q", (3_600_000, 10_800_000, 3_600_000))
    a, b = (("model", "x"), ("user", "a")), (("model", "x"), ("user", "b"))
    assert vectors == {3_600_000: {a: 5}, 7_200_000: {a: 7, b: 9}, 10_800_000: {}}


def test_an_error_answer_names_the_query() -> None:
    body = orjson.dumps({"status": "error", "error": "bad"})
    with pytest.raises(PrometheusQueryError, match=r"'bad'.*'q'"):
        by_time(body, "q", (0, 0, 1))


def test_a_partial_answer_is_refused_and_promql_notes_are_not() -> None:
    note = 'PromQL info: metric might not be a counter, name does not end in _total: "m"'
    body = orjson.dumps({"status": "success", "warnings": [note],
                         "data": {"resultType": "vector", "result": []}})  # fmt: skip
    assert results(body, "q") == []
    store = 'fetch series for {replica="b"} Addr: 10.0.0.7:10901: rpc error: code = Unavailable'
    partial = orjson.dumps({"status": "success", "warnings": [note, store],
                            "data": {"resultType": "vector", "result": []}})  # fmt: skip
    with pytest.raises(PartialResponse, match=r"only some of its stores.*Addr: 10\.0\.0\.7:10901"):
        results(partial, "q")
