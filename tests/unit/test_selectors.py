"""User selectors: only label matchers pass; everything else is refused with a reason."""

from __future__ import annotations

import pytest

from chargeback.domain.selectors import (
    Matcher,
    SelectorError,
    parse_selector,
    quote,
    series_selector,
)


def test_plain_matchers_are_accepted_and_rendered_escaped() -> None:
    matchers = parse_selector('model!="", tier=~"free|premium", user="a\\"b"')
    assert matchers == (
        Matcher("model", "!=", ""),
        Matcher("tier", "=~", "free|premium"),
        Matcher("user", "=", 'a"b'),
    )
    assert series_selector("authorized_hits", matchers) == (
        'authorized_hits{model!="",tier=~"free|premium",user="a\\"b"}'
    )
    assert parse_selector("{model!=''}") == (Matcher("model", "!=", ""),)
    assert parse_selector("  ") == ()


@pytest.mark.parametrize(
    ("selector", "reason"),
    [
        ('model!="") or vector(1', "not valid PromQL"),
        ('model="a"} or up{', "not a BinaryExpr"),
        ('model="a" or user="b"', "must not use 'or'"),
        ("up", "not valid PromQL"),
        ('{model="a"} offset 1h', "offset"),
        ('{model="a"} @ 100', "offset/@"),
        ('__name__="secrets"', "__name__"),
        ("rate(x[5m])", "not valid PromQL"),
        ('model="a"}[5m]', "not valid PromQL"),
        ('model="a"} + on() group_left {x="1"', "not a BinaryExpr"),
        ('model=~"(', "not valid PromQL"),
        ("model", "not valid PromQL"),
    ],
)
def test_anything_but_label_matchers_is_refused(selector: str, reason: str) -> None:
    with pytest.raises(SelectorError, match="selector") as err:
        parse_selector(selector)
    assert reason in str(err.value)


def test_label_values_are_escaped_so_they_cannot_break_out() -> None:
    hostile = '"} or vector(1) or {a="'
    rendered = series_selector("authorized_hits", (Matcher("user", "=", hostile),))
    assert rendered == 'authorized_hits{user="\\"} or vector(1) or {a=\\""}'
    assert parse_selector(rendered.removeprefix("authorized_hits")) == (
        Matcher("user", "=", hostile),
    )
    assert quote("a\\b\nc") == '"a\\\\b\\nc"'
