"""What a reconciliation produced: the status to write, events to post, and how it failed.

Services say *what kind* of failure it was; the kopf handlers map it to kopf's
``PermanentError`` (a spec problem: retried only when the object changes) or ``TemporaryError``
(an outage: retried with backoff). The readable condition is in the status either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from chargeback.adapters.kube import refusal
from chargeback.adapters.ledger import LedgerError
from chargeback.domain.conditions import Reason, status_changes


class Failure(Enum):
    """How a reconciliation failed."""

    PERMANENT = "permanent"
    """The spec cannot work as written; nothing changes until the object does."""
    TEMPORARY = "temporary"
    """Something outside the object (Prometheus, the ledger) failed; retry later."""


@dataclass(frozen=True)
class Event:
    """A Kubernetes event to post on the object."""

    warning: bool
    reason: Reason | str
    message: str
    deduplicate: bool = True
    """Warn once per change of reason (failures); False: the caller already posts it once."""


@dataclass
class Outcome:
    """What to write and post after a reconciliation.

    ``status`` is the patch: empty when nothing but volatile fields would change (Kubernetes API
    conventions: a refresh that finds the same numbers writes nothing).
    """

    status: dict[str, Any]
    ready: bool
    events: list[Event] = field(default_factory=list)
    failure: Failure | None = None
    message: str = ""
    """Why it failed (the Ready condition's message)."""
    repeated: bool = False
    """The same failure as last time: already said (status, events, logs); just retry."""


def outcome(
    current: Mapping[str, Any],
    desired: Mapping[str, Any],
    *,
    events: list[Event] | None = None,
    failure: Failure | None = None,
    message: str = "",
) -> Outcome:
    """The outcome of computing ``desired`` status for an object whose status is ``current``."""
    ready = any(
        c["type"] == "Ready" and c["status"] == "True" for c in desired.get("conditions", [])
    )
    patch = status_changes(current, desired)
    return Outcome(patch, ready, events or [], failure, message)


def unexpected(exc: Exception) -> tuple[Reason, str]:
    """The condition reason and message of a failure nobody anticipated."""
    ledger = isinstance(exc, LedgerError) or type(exc).__module__.startswith("sqlalchemy")
    reason = Reason.LEDGER_UNAVAILABLE if ledger else Reason.RECONCILE_FAILED
    return reason, refusal(exc) or f"{type(exc).__name__}: {str(exc)[:1500]}"
