"""UsageScope reconciliation: say whether a scope can grant what it says.

A scope whose selector or source cannot work grants nothing (the reports of its namespaces say
so too); its Ready condition tells the administrator why, as soon as it is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from chargeback.api.base import problems
from chargeback.api.scope import UsageScopeSpec, UsageScopeStatus
from chargeback.domain.conditions import Cond, Reason, Type
from chargeback.domain.selectors import SelectorError, parse_selector
from chargeback.services.outcome import Failure, Outcome, outcome
from chargeback.services.status import as_patch, conditions


def _validity(spec: Mapping[str, Any]) -> tuple[Cond, Failure | None]:
    try:
        parsed = UsageScopeSpec.model_validate(spec)
        parse_selector(parsed.selector)
        if parsed.source is not None:
            parse_selector(parsed.source.selector)
    except ValidationError as exc:
        return Cond(Type.READY, False, Reason.INVALID_SPEC, problems(exc, "spec.")), (
            Failure.PERMANENT)  # fmt: skip
    except SelectorError as exc:
        return Cond(Type.READY, False, Reason.INVALID_SELECTOR, str(exc)), Failure.PERMANENT
    granted = [f"{len(parsed.namespaces)} namespace(s) by name"]
    if parsed.namespace_selector is not None:
        labels = ", ".join(f"{k}={v}" for k, v in parsed.namespace_selector.match_labels.items())
        granted.append(f"namespaces labelled {labels}")
    what = "all usage" if parsed.unrestricted else f"usage where {parsed.selector or 'any'}"
    return Cond(Type.READY, True, Reason.VALID, f"grants {what} to {' and '.join(granted)}"), None


class ScopeReconciler:
    """Validates scopes and reports it in their status."""

    def __init__(self, clock: Callable[[], int]) -> None:
        self.clock = clock

    def reconcile(
        self, spec: Mapping[str, Any], generation: int, status: Mapping[str, Any]
    ) -> Outcome:
        """The scope's status: Ready, or why it grants nothing."""
        cond, failure = _validity(spec)
        now = self.clock()
        result = UsageScopeStatus(
            observed_generation=generation,
            conditions=conditions(status.get("conditions") or [], [cond], now, generation),
        )
        return outcome(status, as_patch(result), failure=failure, message=cond.message)
