"""The exporter seam: every rendition of a report document, registered in one place.

A format is one module with a :class:`Format`; registering it here makes it appear in
``chargeback report --format``, at the operator's ``/reports/.../<period>.<format>`` endpoint,
as ``report.<format>`` in every export ConfigMap, and in finalised documents read back from the
ledger. Renderings are pure and deterministic: the same document gives the same text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chargeback.domain.reports import ReportDocument


@dataclass(frozen=True)
class ExportContext:
    """What a rendition may need beyond the document: the names finance exports carry."""

    provider: str = "AI platform"
    """Who makes the models available (FOCUS ProviderName, ServiceProviderName, PublisherName)."""
    invoice_issuer: str = "AI platform"
    """Who charges for them (FOCUS InvoiceIssuerName)."""
    host_provider: str = "Red Hat OpenShift"
    """Where they run (FOCUS HostProviderName)."""
    service: str = "AI model inference"
    """The service charged (FOCUS ServiceName)."""


DEFAULT_CONTEXT = ExportContext()


@dataclass(frozen=True)
class Format:
    """One rendition of a report document."""

    name: str
    """The ``--format`` value, the URL suffix and the ConfigMap key's suffix."""
    media_type: str
    """The HTTP Content-Type."""
    render: Callable[[ReportDocument, ExportContext], str]
    """The document as text."""

    @property
    def key(self) -> str:
        """The key of this rendition in an export ConfigMap."""
        return f"report.{self.name}"


class UnknownFormat(KeyError):
    """No format of that name is registered."""


_REGISTRY: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    """Add a format (a name is registered once); return it."""
    if fmt.name in _REGISTRY and _REGISTRY[fmt.name] is not fmt:
        raise ValueError(f"export format {fmt.name!r} is already registered")
    if not fmt.name.isalnum() or fmt.name != fmt.name.lower():
        raise ValueError(f"export format names are lower-case letters and digits: {fmt.name!r}")
    _REGISTRY[fmt.name] = fmt
    return fmt


def unregister(name: str) -> None:
    """Remove a format (for tests that register one of their own)."""
    _REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    """The registered format names, in registration order."""
    return tuple(_REGISTRY)


def formats() -> tuple[Format, ...]:
    """The registered formats, in registration order."""
    return tuple(_REGISTRY.values())


def get(name: str) -> Format:
    """The format called ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownFormat(f"no export format {name!r}; known: {', '.join(names())}") from None


def _builtin() -> None:
    # The one place formats are registered. Imported here to keep the registry the only door.
    from chargeback.domain.formats import csv_lines, focus, json_document  # noqa: PLC0415

    register(json_document.FORMAT)
    register(csv_lines.FORMAT)
    register(focus.FORMAT)


_builtin()
