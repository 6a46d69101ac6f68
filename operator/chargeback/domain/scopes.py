"""Which usage a UsageReport may see: its namespace's scope, ANDed into its source.

Pure: given the report's namespace (and its labels), the scopes administrators granted and the
namespaces that are the administrators' own, decide the source the report reads, or why it reads
nothing. A report never chooses which metric is read or how its labels map to users, tiers and
models unless its namespace is unrestricted; it can only narrow what its scope grants.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chargeback.api.scope import UsageScopeSpec
from chargeback.api.source import ADDED_FIELDS, SourceSpec
from chargeback.domain.conditions import Reason
from chargeback.domain.selectors import SelectorError, parse_selector


@dataclass(frozen=True)
class Grant:
    """The report may run, reading ``source``."""

    source: SourceSpec
    """The effective source: the scope's, narrowed by the scope and the report."""
    scope: str | None
    """The granting scope's name; None in an administrators' namespace."""
    selector: str
    """The scope's matchers ANDed into the report (empty: none), stated in its documents."""


@dataclass(frozen=True)
class Denied:
    """The report sees nothing; the condition says why."""

    reason: Reason
    message: str


def _granted(scope: UsageScopeSpec, namespace: str, labels: Mapping[str, str]) -> bool:
    if namespace in scope.namespaces:
        return True
    selector = scope.namespace_selector
    return selector is not None and all(
        labels.get(k) == v for k, v in selector.match_labels.items()
    )


def _combined(*selectors: str) -> str:
    """The selectors' matchers together (AND), de-duplicated, in order."""
    seen: list[str] = []
    for text in selectors:
        for matcher in parse_selector(text):
            rendered = matcher.render()
            if rendered not in seen:
                seen.append(rendered)
    return ", ".join(seen)


def authorize(
    report: SourceSpec,
    namespace: str,
    namespace_labels: Mapping[str, str],
    scopes: Sequence[tuple[str, UsageScopeSpec]],
    admin_namespaces: frozenset[str] = frozenset(),
) -> Grant | Denied:
    """The source a report in ``namespace`` with source spec ``report`` may read."""
    if namespace in admin_namespaces:
        return Grant(report, None, "")
    matching = [(name, s) for name, s in scopes if _granted(s, namespace, namespace_labels)]
    if not matching:
        return Denied(Reason.NO_SCOPE, f"no UsageScope grants namespace {namespace} any usage; "
                      "a cluster administrator grants it with a UsageScope")  # fmt: skip
    if len(matching) > 1:
        names = ", ".join(sorted(name for name, _ in matching))
        return Denied(Reason.SCOPE_CONFLICT, f"namespace {namespace} is granted by several "
                      f"UsageScopes ({names}); a namespace takes exactly one")  # fmt: skip
    name, scope = matching[0]
    return Grant(report, name, "") if scope.unrestricted else _narrowed(report, name, scope)


def _narrowed(report: SourceSpec, name: str, scope: UsageScopeSpec) -> Grant | Denied:
    """The scope's source, narrowed by the scope's and the report's matchers."""
    base = scope.source or SourceSpec()
    # Only what the report sets itself counts: its defaults (labels, the selector `model!=""`)
    # are the workshop counter's, not necessarily the scope's gateway's.
    given = report.model_fields_set
    relabelled = "labels" in given and report.labels != base.labels
    typed = [f for f in ADDED_FIELDS if f in given or "preset" in given]
    retyped = any(getattr(report, f) != getattr(base, f) for f in typed)
    if report.metric not in (None, base.metric) or relabelled or retyped:
        return Denied(Reason.SOURCE_NOT_ALLOWED, f"source.metric and source.labels are set by "
                      f"UsageScope {name} (and its preset and token types); a report in its "
                      "namespaces may only narrow "
                      "source.selector and add source.extraLabels")  # fmt: skip
    try:
        own = report.selector if "selector" in given else ""
        combined = _combined(base.selector, scope.selector, own)
    except SelectorError as exc:
        return Denied(Reason.INVALID_SCOPE, f"UsageScope {name}: {exc}")
    extra = tuple(dict.fromkeys((*base.extra_labels, *report.extra_labels)))
    effective = base.model_copy(update={"selector": combined, "extra_labels": extra})
    return Grant(effective, name, _combined(scope.selector))
