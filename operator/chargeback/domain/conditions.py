"""Kubernetes-style conditions, computed whole in one place.

`lastTransitionTime` moves only when a condition's status flips; `Ready` summarises the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cond:
    """A condition as computed now (without times)."""

    type: str
    status: bool | None
    reason: str
    message: str = ""

    @property
    def status_text(self) -> str:
        """True, False or Unknown."""
        return {True: "True", False: "False", None: "Unknown"}[self.status]


def merge(
    previous: Sequence[Mapping[str, Any]], current: Sequence[Cond], now_iso: str, generation: int
) -> list[dict[str, Any]]:
    """The full conditions list: times kept where a status did not change."""
    before = {c.get("type"): c for c in previous}
    merged = []
    for cond in current:
        old = before.get(cond.type)
        changed = old is None or old.get("status") != cond.status_text
        merged.append({
            "type": cond.type,
            "status": cond.status_text,
            "reason": cond.reason,
            "message": cond.message[:2048],
            "lastTransitionTime": now_iso if changed else old["lastTransitionTime"],  # type: ignore[index]
            "observedGeneration": generation,
        })  # fmt: skip
    return merged


def ready(others: Sequence[Cond], blocking: Sequence[str]) -> Cond:
    """Ready is False with the first failing blocking condition's reason, else True."""
    for cond in others:
        if cond.type in blocking and cond.status is not True:
            return Cond("Ready", False, cond.reason, cond.message)
    return Cond("Ready", True, "Reconciled", "")


VOLATILE = frozenset({"lastRefreshTime"})
"""Status fields that alone never justify a write (they would change on every refresh)."""


def status_changes(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The status to write: ``desired`` when anything but a volatile field differs, else nothing.

    A refresh that finds the same numbers writes no status (Kubernetes API conventions; each
    write wakes every watcher of the object). A field set to None is absent in ``current``.
    """
    differs = any(
        current.get(key) != value for key, value in desired.items() if key not in VOLATILE
    )
    return dict(desired) if differs else {}
