"""Names of objects derived from user input (report and pricing names), valid and unique.

Kubernetes names may be 253 characters, label values 63, Grafana dashboard uids 40. A derived
name that would not fit keeps its head and ends in a hash of the whole, so two long names that
share a prefix never map to the same object.
"""

from __future__ import annotations

import hashlib

LABEL_VALUE = 63
OBJECT_NAME = 253
GRAFANA_UID = 40


def fit(name: str, limit: int) -> str:
    """``name`` when it has at most ``limit`` characters, else its head, ``-`` and a hash."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-.')}-{digest}"
