"""Safe PromQL construction: parse user selectors, accept only label matchers, escape values."""

from __future__ import annotations

import re
from dataclasses import dataclass

import promql_parser

from chargeback.api.source import SourceSpec

_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_OPS = (
    (promql_parser.MatchOp.Equal, "="),
    (promql_parser.MatchOp.NotEqual, "!="),
    (promql_parser.MatchOp.Re, "=~"),
    (promql_parser.MatchOp.NotRe, "!~"),
)  # MatchOp is not hashable, so no dict


class SelectorError(ValueError):
    """A selector is not a plain list of label matchers."""


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher, e.g. model != ""."""

    label: str
    op: str
    value: str

    def render(self) -> str:
        """PromQL text with the value escaped as a double-quoted string."""
        return f"{self.label}{self.op}{quote(self.value)}"


def quote(value: str) -> str:
    """Quote a label value for PromQL: backslashes, quotes and newlines escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


_RE2_SPECIAL = set("\\.+*?()|[]{}^$")


def regex_escape(value: str) -> str:
    """Escape a literal for a PromQL (RE2) regular expression."""
    return "".join("\\" + ch if ch in _RE2_SPECIAL else ch for ch in value)


def parse_selector(text: str) -> tuple[Matcher, ...]:
    """Parse ``text`` (with or without braces) into label matchers; reject anything else."""
    stripped = text.strip()
    if not stripped:
        return ()
    body = stripped if stripped.startswith("{") else "{" + stripped + "}"
    try:
        expr = promql_parser.parse(body)
    except ValueError as exc:
        raise SelectorError(f"selector {text!r} is not valid PromQL: {exc}") from exc
    if not isinstance(expr, promql_parser.VectorSelector):
        kind = type(expr).__name__
        raise SelectorError(f"selector {text!r} must be label matchers only, not a {kind}")
    if expr.name or expr.offset is not None or expr.at is not None:
        raise SelectorError(
            f"selector {text!r} must not name a metric or use offset/@; give label matchers only"
        )
    if expr.matchers.or_matchers:
        raise SelectorError(f"selector {text!r} must not use 'or' between matchers")
    matchers = []
    for raw in expr.matchers.matchers:
        if raw.name == "__name__":
            raise SelectorError(f"selector {text!r} must not match on __name__")
        if not _LABEL.match(raw.name):
            raise SelectorError(f"selector {text!r}: invalid label name {raw.name!r}")
        op = next((text for kind, text in _OPS if raw.op == kind), None)
        if op is None:
            raise SelectorError(f"selector {text!r}: unsupported matcher {raw.op}")
        matchers.append(Matcher(raw.name, op, raw.value))
    return tuple(matchers)


def series_selector(metric: str, matchers: tuple[Matcher, ...]) -> str:
    """``metric{matchers}`` as PromQL text."""
    if not re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$", metric):
        raise SelectorError(f"invalid metric name {metric!r}")
    inner = ",".join(m.render() for m in matchers)
    return f"{metric}{{{inner}}}" if inner else metric


def source_matchers(source: SourceSpec) -> tuple[Matcher, ...]:
    """The matchers of the series a source reads.

    Its selector's, and only the token types it lists when it has a token type label (so a total
    beside its parts is never read).
    """
    matchers = parse_selector(source.selector)
    if source.token_type_label:
        values = "|".join(regex_escape(value) for value in sorted(source.token_types))
        matchers = (*matchers, Matcher(source.token_type_label, "=~", values))
    return matchers
