"""What a reconciliation produced: the status to write, events to post, and how it failed.

Services say *what kind* of failure it was; the kopf handlers map it to kopf's
``PermanentError`` (a spec problem: retried only when the object changes) or ``TemporaryError``
(an outage: retried with backoff). The readable condition is in the status either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from chargeback.domain.conditions import Reason


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


@dataclass
class Outcome:
    """The status patch (JSON, as the API server stores it), events and failure, if any."""

    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    failure: Failure | None = None
    message: str = ""
    """Why it failed (the Ready condition's message)."""

    @property
    def ready(self) -> bool:
        """Whether the object is Ready after this reconciliation."""
        return any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in self.status.get("conditions", [])
        )
